package io.sentinelstream.client;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.BadRequest;
import io.grpc.CallCredentials;
import io.grpc.ChannelCredentials;
import io.grpc.ClientInterceptor;
import io.grpc.Context;
import io.grpc.Deadline;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.TlsChannelCredentials;
import io.grpc.protobuf.StatusProto;
import io.grpc.stub.StreamObserver;
import io.sentinelstream.v1.Decision;
import io.sentinelstream.v1.ScoreBatchRequest;
import io.sentinelstream.v1.ScoreBatchResult;
import io.sentinelstream.v1.ScoreRequest;
import io.sentinelstream.v1.ScoreStreamRequest;
import io.sentinelstream.v1.ScoreStreamResponse;
import io.sentinelstream.v1.ScoringServiceGrpc;
import io.sentinelstream.v1.Transaction;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import java.util.function.Function;
import java.util.function.Supplier;

/**
 * A thin client of SentinelStream's scoring API (sentinel.v1.ScoringService) over the generated
 * grpc-java stubs.
 *
 * <p>What it adds to the generated stubs: a deadline on every unary call (a scoring call without one
 * can hold a payment forever) and retries of UNAVAILABLE and CANCELLED answers within that deadline.
 * CANCELLED is what a server that begins shutting down (SIGTERM) answers the calls it has received but not
 * yet handed to its handlers, and a proxy in front of it (nginx) passes that answer on instead of
 * resending the call; a call its caller cancelled (its gRPC context, an interrupt) is never retried.
 * Retrying is safe only because the retried request carries the same idempotency key: the server answers a retry with
 * the original decision (marked {@code replayed}) instead of scoring, and recording, the transaction
 * twice. The client therefore fills the key in (the transaction id, as the server would) and resends the
 * very same request message. Streams are not retried.
 *
 * <p>Transport: plaintext by default (a server on this machine); TLS with {@link Builder#tls()} or a CA
 * or client certificate. A token, or a token provider asked before every call, goes as
 * {@code authorization: Bearer <token>}, never in plaintext to another machine.
 */
public final class SentinelClient implements AutoCloseable {
  /** Facts about a retry, for logs and metrics: the attempt (from 1) that failed and the wait. */
  public record RetryEvent(String method, int attempt, StatusRuntimeException error, Duration backoff) {}

  private final ManagedChannel channel;
  private final ScoringServiceGrpc.ScoringServiceBlockingStub blocking;
  private final ScoringServiceGrpc.ScoringServiceStub async;
  private final Builder settings;

  private SentinelClient(Builder settings) {
    this.settings = settings;
    ManagedChannelBuilder<?> channelBuilder = Grpc.newChannelBuilder(settings.target, settings.credentials());
    channelBuilder.intercept(settings.interceptors);
    this.channel = channelBuilder.build();
    CallCredentials token = settings.tokenProvider == null ? null : new BearerToken(settings.tokenProvider);
    this.blocking = ScoringServiceGrpc.newBlockingStub(channel).withCallCredentials(token);
    this.async = ScoringServiceGrpc.newStub(channel).withCallCredentials(token);
  }

  /** A builder of a client of the server at target ("host:port", "dns:///host:port", "unix:path"). */
  public static Builder newBuilder(String target) {
    return new Builder(target);
  }

  /**
   * The decision for one transaction.
   *
   * @throws StatusRuntimeException the server's status (see {@link #fieldViolations} for the fields an
   *     INVALID_ARGUMENT names), after the retries of UNAVAILABLE and CANCELLED
   */
  public Decision score(Transaction transaction) {
    ScoreRequest request = ScoreRequest.newBuilder().setTransaction(withIdempotencyKey(transaction)).build();
    return withRetries("Score", settings.deadline, stub -> stub.score(request)).getDecision();
  }

  /** One result per transaction, in order: a decision, or an ItemError for an invalid item. */
  public List<ScoreBatchResult> scoreBatch(List<Transaction> transactions) {
    ScoreBatchRequest.Builder request = ScoreBatchRequest.newBuilder();
    transactions.forEach(transaction -> request.addTransactions(withIdempotencyKey(transaction)));
    ScoreBatchRequest message = request.build();
    return withRetries("ScoreBatch", settings.batchDeadline, stub -> stub.scoreBatch(message)).getResultsList();
  }

  /**
   * Opens a ScoreStream call: send transactions through the returned stream, responses arrive at
   * {@code responses} (matched by transaction id, possibly out of order; an invalid transaction gets a
   * response with an error and the stream stays open). No deadline, since the stream is meant to be
   * long-lived; not retried: after a broken stream, resend the transactions that got no response (their
   * idempotency keys make that safe).
   */
  public ScoreStream scoreStream(StreamObserver<ScoreStreamResponse> responses) {
    return new ScoreStream(async.scoreStream(responses));
  }

  /** The sending side of a ScoreStream call; not thread-safe. */
  public static final class ScoreStream {
    private final StreamObserver<ScoreStreamRequest> requests;

    private ScoreStream(StreamObserver<ScoreStreamRequest> requests) {
      this.requests = requests;
    }

    /** Sends one transaction, its idempotency key filled in. */
    public void send(Transaction transaction) {
      requests.onNext(ScoreStreamRequest.newBuilder().setTransaction(withIdempotencyKey(transaction)).build());
    }

    /** No more transactions: the server answers the ones sent, then ends the call. */
    public void complete() {
      requests.onCompleted();
    }

    /** Ends the call now. */
    public void cancel(Throwable cause) {
      requests.onError(cause);
    }
  }

  /**
   * The fields an error names: the google.rpc.BadRequest details that the server attaches to
   * INVALID_ARGUMENT (e.g. field "transaction.amount.amount"); empty for other errors. Items of batches
   * and streams carry theirs in ItemError's field violations instead.
   */
  public static List<BadRequest.FieldViolation> fieldViolations(Throwable error) {
    com.google.rpc.Status status = StatusProto.fromThrowable(error);
    List<BadRequest.FieldViolation> violations = new ArrayList<>();
    if (status == null) {
      return violations;
    }
    for (var detail : status.getDetailsList()) {
      if (detail.is(BadRequest.class)) {
        try {
          violations.addAll(detail.unpack(BadRequest.class).getFieldViolationsList());
        } catch (InvalidProtocolBufferException malformed) {
          // a detail that does not parse names no field
        }
      }
    }
    return violations;
  }

  /** Closes the channel, waiting up to 5 s for calls in flight. */
  @Override
  public void close() throws InterruptedException {
    channel.shutdown();
    if (!channel.awaitTermination(5, TimeUnit.SECONDS)) {
      channel.shutdownNow();
    }
  }

  private <T> T withRetries(
      String method, Duration budget, Function<ScoringServiceGrpc.ScoringServiceBlockingStub, T> call) {
    Deadline deadline = Deadline.after(budget.toNanos(), TimeUnit.NANOSECONDS);
    ScoringServiceGrpc.ScoringServiceBlockingStub stub = blocking.withDeadline(deadline);
    for (int attempt = 1; ; attempt++) {
      try {
        return call.apply(stub);
      } catch (StatusRuntimeException error) {
        long backoffMs = Math.min(settings.maxBackoff.toMillis(), settings.initialBackoff.toMillis() << (attempt - 1));
        if (!retryable(error) || attempt >= settings.maxAttempts || deadline.timeRemaining(TimeUnit.MILLISECONDS) <= backoffMs) {
          throw error;
        }
        if (settings.onRetry != null) {
          settings.onRetry.accept(new RetryEvent(method, attempt, error, Duration.ofMillis(backoffMs)));
        }
        try {
          Thread.sleep(backoffMs);
        } catch (InterruptedException interrupted) {
          Thread.currentThread().interrupt();
          throw error;
        }
      }
    }
  }

  /**
   * Whether an error is an answer worth another attempt: UNAVAILABLE, or CANCELLED that came from the
   * server or a proxy, not from the caller (its gRPC context cancelled, or its thread interrupted).
   */
  private static boolean retryable(StatusRuntimeException error) {
    return switch (error.getStatus().getCode()) {
      case UNAVAILABLE -> true;
      case CANCELLED -> !Context.current().isCancelled() && !Thread.currentThread().isInterrupted();
      default -> false;
    };
  }

  /** The transaction with its idempotency key set: the given key, else the transaction id. */
  static Transaction withIdempotencyKey(Transaction transaction) {
    if (!transaction.getIdempotencyKey().isEmpty()) {
      return transaction;
    }
    return transaction.toBuilder().setIdempotencyKey(transaction.getTransactionId()).build();
  }

  /** Sends the provider's token with every call as {@code authorization: Bearer <token>}. */
  private static final class BearerToken extends CallCredentials {
    private static final Metadata.Key<String> AUTHORIZATION =
        Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);
    private final Supplier<String> provider;

    BearerToken(Supplier<String> provider) {
      this.provider = provider;
    }

    @Override
    public void applyRequestMetadata(RequestInfo info, Executor executor, MetadataApplier applier) {
      executor.execute(() -> {
        try {
          Metadata headers = new Metadata();
          headers.put(AUTHORIZATION, "Bearer " + provider.get());
          applier.apply(headers);
        } catch (RuntimeException failure) {
          applier.fail(Status.UNAUTHENTICATED.withDescription("token provider failed").withCause(failure));
        }
      });
    }
  }

  /** Settings of a client; {@link #build()} makes it. */
  public static final class Builder {
    private final String target;
    private boolean tls;
    private byte[] ca;
    private byte[] certificate;
    private byte[] key;
    private ChannelCredentials credentials;
    private Supplier<String> tokenProvider;
    private Duration deadline = Duration.ofSeconds(1);
    private Duration batchDeadline = Duration.ofSeconds(10);
    private int maxAttempts = 3;
    private Duration initialBackoff = Duration.ofMillis(50);
    private Duration maxBackoff = Duration.ofMillis(500);
    private Consumer<RetryEvent> onRetry;
    private final List<ClientInterceptor> interceptors = new ArrayList<>();

    private Builder(String target) {
      this.target = target;
    }

    /** TLS with the JVM's trusted roots (implied by {@link #ca} and {@link #clientCertificate}). */
    public Builder tls() {
      this.tls = true;
      return this;
    }

    /** The CA certificate(s), PEM, that issued the server's certificate. */
    public Builder ca(byte[] pem) {
      this.tls = true;
      this.ca = pem;
      return this;
    }

    /** A client certificate and its private key (PEM, PKCS#8), for a server that requires them. */
    public Builder clientCertificate(byte[] certificatePem, byte[] keyPem) {
      this.tls = true;
      this.certificate = certificatePem;
      this.key = keyPem;
      return this;
    }

    /** Channel credentials of the caller's own, instead of tls/ca/clientCertificate. */
    public Builder credentials(ChannelCredentials credentials) {
      this.credentials = credentials;
      return this;
    }

    /** A bearer token sent with every call. */
    public Builder token(String token) {
      return tokenProvider(() -> token);
    }

    /** Asked before every call for the bearer token to send (e.g. a refreshed one). */
    public Builder tokenProvider(Supplier<String> provider) {
      this.tokenProvider = provider;
      return this;
    }

    /** Time budget of a Score call, retries included (default 1 s). */
    public Builder deadline(Duration budget) {
      this.deadline = budget;
      return this;
    }

    /** Time budget of a ScoreBatch call, retries included (default 10 s). */
    public Builder batchDeadline(Duration budget) {
      this.batchDeadline = budget;
      return this;
    }

    /** Attempts per unary call when the server answers UNAVAILABLE or CANCELLED (default 3; 1: none). */
    public Builder maxAttempts(int attempts) {
      this.maxAttempts = Math.max(1, attempts);
      return this;
    }

    /** Wait before the first retry, doubled per retry up to max (defaults 50 ms and 500 ms). */
    public Builder backoff(Duration initial, Duration max) {
      this.initialBackoff = initial;
      this.maxBackoff = max;
      return this;
    }

    /** Called before each retry. */
    public Builder onRetry(Consumer<RetryEvent> listener) {
      this.onRetry = listener;
      return this;
    }

    /** Interceptors of the channel (tracing, metrics, ...). */
    public Builder intercept(ClientInterceptor... added) {
      interceptors.addAll(List.of(added));
      return this;
    }

    /** The client; refuses contradictory settings and a token that would cross the network in plaintext. */
    public SentinelClient build() {
      if ((certificate == null) != (key == null)) {
        throw new IllegalArgumentException("client certificate and key go together");
      }
      if (tls && credentials != null) {
        throw new IllegalArgumentException("give credentials or tls/ca/clientCertificate, not both");
      }
      if (tokenProvider != null && !tls && credentials == null && !isLoopback(target)) {
        throw new IllegalArgumentException("a token would cross the network in plaintext to " + target + ": use TLS");
      }
      return new SentinelClient(this);
    }

    private ChannelCredentials credentials() {
      if (credentials != null) {
        return credentials;
      }
      if (!tls) {
        return InsecureChannelCredentials.create();
      }
      try {
        TlsChannelCredentials.Builder builder = TlsChannelCredentials.newBuilder();
        if (ca != null) {
          builder.trustManager(stream(ca));
        }
        if (certificate != null) {
          builder.keyManager(stream(certificate), stream(key));
        }
        return builder.build();
      } catch (IOException unreadable) {
        throw new UncheckedIOException("unreadable certificate or key", unreadable);
      }
    }

    private static InputStream stream(byte[] pem) {
      return new ByteArrayInputStream(pem);
    }
  }

  /** Whether a gRPC target ("host:port", "dns:///host:port", "[::1]:port", "unix:path") names this machine. */
  static boolean isLoopback(String target) {
    if (target.startsWith("unix:")) {
      return true;
    }
    String address = target.replaceFirst("^(dns:///|ipv4:|ipv6:)", "");
    String host;
    if (address.startsWith("[")) {
      host = address.substring(1, Math.max(1, address.indexOf(']')));
    } else {
      int colon = address.lastIndexOf(':');
      host = colon > 0 && address.indexOf(':') == colon ? address.substring(0, colon) : address;
    }
    if (host.equals("localhost")) {
      return true;
    }
    if (!host.matches("[0-9.]+|[0-9a-fA-F:]+")) {
      return false; // a name: never resolved here, so only "localhost" counts
    }
    try {
      return InetAddress.getByName(host).isLoopbackAddress();
    } catch (UnknownHostException notAnAddress) {
      return false;
    }
  }
}
