/**
 * A thin, promise-based client of sentinel.v1.ScoringService over the generated ts-proto stubs.
 *
 * What it adds to the generated ScoringServiceClient: a deadline on every unary call (a scoring call
 * without one can hold a payment forever), retries of UNAVAILABLE and CANCELLED answers within that
 * deadline, and async iteration for ScoreStream. CANCELLED is what a server that begins shutting down
 * (SIGTERM) answers the calls it has received but not yet handed to its handlers, and a proxy in front of
 * it (nginx) passes that answer on instead of resending the call (a unary call of this client cannot be
 * cancelled by its caller, so a CANCELLED always comes from there). Retrying is safe only because the
 * retried request carries the same idempotency key: the server answers a retry with the original decision (marked `replayed`) instead
 * of scoring — and recording — the transaction twice. The client therefore fills the key in
 * explicitly (the transaction id, as the server would) and resends the very same request message.
 *
 * Transport: plaintext by default (a server on this machine); TLS with `tls: true` or any of `ca`, `cert`
 * and `key` (the CA that issued the server's certificate, else Node's roots; a client certificate and
 * key for a server that requires them). A `token`, or a `tokenProvider` asked before every call (so it
 * can hand out a refreshed token), goes as `authorization: Bearer <token>`, never in plaintext to another
 * machine.
 */
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

import {
  type ChannelCredentials,
  type ClientOptions,
  credentials,
  Metadata,
  type ServiceError,
  status,
} from "@grpc/grpc-js";

import type { Decision } from "./gen/sentinel/v1/decision";
import {
  type ScoreBatchResponse,
  type ScoreBatchResult,
  type ScoreResponse,
  ScoringServiceClient,
  type ScoreStreamResponse,
} from "./gen/sentinel/v1/scoring";
import { type DeepPartial, Transaction } from "./gen/sentinel/v1/transaction";

/** The answers worth another attempt: the server could not decide or record it now, or it was cancelled
 * on the server's side (a draining server, a proxy passing that on). */
const RETRYABLE: ReadonlySet<status> = new Set([status.UNAVAILABLE, status.CANCELLED]);

/** A transaction as the caller writes it: every field optional, missing ones take proto3 defaults. */
export type TransactionInput = DeepPartial<Transaction>;

/** Facts about a retry, for logging and metrics. */
export interface RetryEvent {
  /** "Score" or "ScoreBatch". */
  method: string;
  /** The attempt that failed, from 1. */
  attempt: number;
  /** The UNAVAILABLE or CANCELLED error of that attempt. */
  error: ServiceError;
  /** How long the client waits before the next attempt. */
  backoffMs: number;
}

/** A PEM: its contents (a Buffer, or a string starting with "-----BEGIN") or the path of its file. */
export type PemSource = string | Buffer;

export interface SentinelClientOptions {
  /** TLS with Node's root certificates (implied by ca, cert and key). */
  tls?: boolean;
  /** The CA certificate(s) that issued the server's certificate. */
  ca?: PemSource;
  /** Client certificate and its private key, for a server that requires client certificates (mTLS). */
  cert?: PemSource;
  key?: PemSource;
  /** Bearer token sent with every call. */
  token?: string;
  /** Called before every call for the bearer token to send (e.g. a refreshed one). */
  tokenProvider?: () => string | Promise<string>;
  /** Channel credentials of the caller's own, instead of tls/ca/cert/key. */
  credentials?: ChannelCredentials;
  /** Options of the underlying @grpc/grpc-js channel. */
  channelOptions?: ClientOptions;
  /** Time budget of a Score call, retries included (default 1,000 ms). */
  deadlineMs?: number;
  /** Time budget of a ScoreBatch call, retries included (default 10,000 ms). */
  batchDeadlineMs?: number;
  /** Attempts per unary call when the server answers UNAVAILABLE or CANCELLED (default 3; 1: none). */
  maxAttempts?: number;
  /** Wait before the first retry; doubles per retry up to maxBackoffMs (defaults 50 and 500 ms). */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Called before each retry. */
  onRetry?: (event: RetryEvent) => void;
}

/** Per-call overrides. */
export interface CallSettings {
  /** Time budget of this call in milliseconds, retries included. */
  deadlineMs?: number;
  /** Metadata sent with the call (e.g. tracing headers). */
  metadata?: Metadata;
}

/** Client of SentinelStream's scoring API; call close() when done. */
export class SentinelClient {
  private readonly stub: ScoringServiceClient;
  private readonly deadlineMs: number;
  private readonly batchDeadlineMs: number;
  private readonly maxAttempts: number;
  private readonly initialBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly onRetry?: (event: RetryEvent) => void;
  private readonly tokenProvider?: () => string | Promise<string>;

  constructor(address: string, options: SentinelClientOptions = {}) {
    if ((options.cert === undefined) !== (options.key === undefined)) throw new Error("cert and key go together");
    if (options.token !== undefined && options.tokenProvider !== undefined) {
      throw new Error("give token or tokenProvider, not both");
    }
    const tls = options.tls === true || options.ca !== undefined || options.cert !== undefined;
    if (tls && options.credentials !== undefined) throw new Error("give credentials or tls/ca/cert/key, not both");
    const token = options.token;
    this.tokenProvider = token !== undefined ? () => token : options.tokenProvider;
    const secure = tls || options.credentials !== undefined;
    if (this.tokenProvider !== undefined && !secure && !isLoopback(address)) {
      throw new Error(`a token would cross the network in plaintext to ${address}: use TLS`);
    }
    const channelCredentials = tls
      ? credentials.createSsl(pem(options.ca), pem(options.key), pem(options.cert))
      : (options.credentials ?? credentials.createInsecure());
    this.stub = new ScoringServiceClient(address, channelCredentials, options.channelOptions);
    this.deadlineMs = options.deadlineMs ?? 1_000;
    this.batchDeadlineMs = options.batchDeadlineMs ?? 10_000;
    this.maxAttempts = Math.max(1, options.maxAttempts ?? 3);
    this.initialBackoffMs = options.initialBackoffMs ?? 50;
    this.maxBackoffMs = options.maxBackoffMs ?? 500;
    this.onRetry = options.onRetry;
  }

  /** The decision for one transaction; rejects with the server's ServiceError (code, details). */
  async score(transaction: TransactionInput, settings: CallSettings = {}): Promise<Decision> {
    const request = { transaction: withIdempotencyKey(transaction) };
    const metadata = await this.callMetadata(settings.metadata);
    const response = await this.withRetries("Score", settings.deadlineMs ?? this.deadlineMs, (deadline) =>
      new Promise<ScoreResponse>((resolve, reject) => {
        this.stub.score(request, metadata, { deadline }, (error, reply) =>
          error ? reject(error) : resolve(reply),
        );
      }),
    );
    if (response.decision === undefined) throw new Error("ScoreResponse without a decision");
    return response.decision;
  }

  /** One result per transaction, in order: `{ $case: "decision" }` or `{ $case: "error" }` (an ItemError). */
  async scoreBatch(transactions: TransactionInput[], settings: CallSettings = {}): Promise<ScoreBatchResult[]> {
    const request = { transactions: transactions.map(withIdempotencyKey) };
    const metadata = await this.callMetadata(settings.metadata);
    const response = await this.withRetries(
      "ScoreBatch",
      settings.deadlineMs ?? this.batchDeadlineMs,
      (deadline) =>
        new Promise<ScoreBatchResponse>((resolve, reject) => {
          this.stub.scoreBatch(request, metadata, { deadline }, (error, reply) =>
            error ? reject(error) : resolve(reply),
          );
        }),
    );
    return response.results;
  }

  /**
   * Sends transactions over one ScoreStream call and yields the responses as they arrive (matched by
   * transaction_id, possibly out of order; an invalid transaction gets a response with an error and
   * the stream stays open). Respects back-pressure. Not retried: after a broken stream, resend the
   * transactions that got no response — their idempotency keys make that safe. No deadline unless
   * settings.deadlineMs is given, since the stream is meant to be long-lived.
   */
  async *scoreStream(
    transactions: Iterable<TransactionInput> | AsyncIterable<TransactionInput>,
    settings: CallSettings = {},
  ): AsyncGenerator<ScoreStreamResponse> {
    const callOptions = settings.deadlineMs === undefined ? {} : { deadline: deadlineAfter(settings.deadlineMs) };
    const call = this.stub.scoreStream(await this.callMetadata(settings.metadata), callOptions);
    const sending = (async () => {
      for await (const transaction of transactions) {
        if (!call.write({ transaction: withIdempotencyKey(transaction) })) await once(call, "drain");
      }
      call.end();
    })();
    sending.catch(() => call.cancel()); // the source failed: end the call; the error surfaces below
    try {
      for await (const response of call) yield response as ScoreStreamResponse;
      await sending;
    } finally {
      call.cancel(); // no-op after a normal end; stops the call when the caller breaks out early
    }
  }

  /** Closes the channel. */
  close(): void {
    this.stub.close();
  }

  /** The caller's metadata (copied) with the bearer token, asked for now, when there is one. */
  private async callMetadata(given: Metadata | undefined): Promise<Metadata> {
    const metadata = given?.clone() ?? new Metadata();
    if (this.tokenProvider !== undefined) metadata.set("authorization", `Bearer ${await this.tokenProvider()}`);
    return metadata;
  }

  private async withRetries<T>(method: string, budgetMs: number, attempt: (deadline: Date) => Promise<T>): Promise<T> {
    const deadline = deadlineAfter(budgetMs);
    for (let number = 1; ; number++) {
      try {
        return await attempt(deadline);
      } catch (error) {
        const backoffMs = Math.min(this.maxBackoffMs, this.initialBackoffMs * 2 ** (number - 1));
        const retryable = isServiceError(error) && RETRYABLE.has(error.code);
        if (!retryable || number >= this.maxAttempts || Date.now() + backoffMs >= deadline.getTime()) throw error;
        this.onRetry?.({ method, attempt: number, error, backoffMs });
        await sleep(backoffMs);
      }
    }
  }
}

/** The transaction with its idempotency key set: the given key, else the transaction id (the server's default). */
function withIdempotencyKey(transaction: TransactionInput): Transaction {
  const message = Transaction.fromPartial(transaction);
  if (message.idempotencyKey === "") message.idempotencyKey = message.transactionId;
  return message;
}

/** The PEM's bytes: the Buffer or "-----BEGIN" text given, or the contents of the file named. */
function pem(source: PemSource | undefined): Buffer | null {
  if (source === undefined) return null;
  if (Buffer.isBuffer(source)) return source;
  return source.startsWith("-----BEGIN") ? Buffer.from(source) : readFileSync(source);
}

/** Whether a gRPC target ("host:port", "dns:///host:port", "[::1]:port", "unix:path") names this machine. */
function isLoopback(target: string): boolean {
  if (target.startsWith("unix:")) return true;
  const address = target.replace(/^(dns:\/\/\/|ipv4:|ipv6:)/, "");
  const bracketed = /^\[([^\]]+)\]/.exec(address);
  const host = bracketed ? bracketed[1] : address.split(":").length === 2 ? address.split(":")[0] : address;
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function deadlineAfter(milliseconds: number): Date {
  return new Date(Date.now() + milliseconds);
}

function isServiceError(error: unknown): error is ServiceError {
  return error instanceof Error && typeof (error as Partial<ServiceError>).code === "number";
}
