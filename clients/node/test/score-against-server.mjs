// Calls a running SentinelStream server through the built client (dist/) and prints what came back as
// one JSON object, for tests/test_client_node.py to check.
//
// Usage: node test/score-against-server.mjs <server address> <address where nothing listens> [id prefix]
// Transaction ids are "<prefix>-1", "<prefix>-b0", ... (prefix "node" by default).
import grpc from "@grpc/grpc-js";
import client from "../dist/index.js";

const { Decision, ItemError, SentinelClient, TransactionType } = client;
const [address, deadAddress, prefix = "node"] = process.argv.slice(2);

function transaction(id, changes = {}) {
  return {
    transactionId: `${prefix}-${id}`,
    accountId: "C-node-1",
    counterpartyId: "M-node-1",
    type: TransactionType.TRANSACTION_TYPE_PAYMENT,
    amount: { amount: "129.90", currency: "EUR" },
    eventTime: new Date(Date.now() - 1000),
    geo: { latitude: 52.52, longitude: 13.4, country: "DE" },
    deviceId: "node-device",
    ...changes,
  };
}

function describeResult(result) {
  return result.$case === "decision"
    ? { decision: Decision.toJSON(result.value) }
    : { error: ItemError.toJSON(result.value) };
}

const sentinel = new SentinelClient(address, { deadlineMs: 10_000 });
const report = {};
try {
  const first = transaction("1");
  report.score = Decision.toJSON(await sentinel.score(first));
  report.scoreAgain = Decision.toJSON(await sentinel.score(first)); // same key, same transaction: replayed
  try {
    await sentinel.score(transaction("bad", { amount: { amount: "-3", currency: "EUR" } }));
    report.invalid = { rejected: false };
  } catch (error) {
    report.invalid = { rejected: true, code: error.code, details: error.details };
  }
  const batch = await sentinel.scoreBatch([
    transaction("b0"),
    transaction("b1", { amount: { amount: "12", currency: "XYZ" } }),
    transaction("b2"),
  ]);
  report.batch = batch.map((item) => describeResult(item.result));
  const streamed = [];
  const toStream = [0, 1, 2, 3, 4].map((i) => transaction(`s${i}`));
  toStream.push(transaction("s-bad", { type: TransactionType.TRANSACTION_TYPE_UNSPECIFIED }));
  for await (const response of sentinel.scoreStream(toStream)) {
    streamed.push({ transactionId: response.transactionId, ...describeResult(response.result) });
  }
  report.stream = streamed;
} finally {
  sentinel.close();
}

// The first call's answer is replaced by an error with `code` on the way back: the server has scored and
// recorded the transaction, the caller sees the error, as after a connection dropped mid-call
// (UNAVAILABLE) or a draining server or proxy cancelled it (CANCELLED).
function replaceFirstResponse(code) {
  let replaced = false;
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        const replacing = !replaced;
        replaced = true;
        // The message still goes through (grpc-js holds the status back until it has), but a unary
        // call answered with an error status ends with that error whatever it received before.
        next(metadata, {
          onReceiveStatus(callStatus, nextStatus) {
            if (!replacing || callStatus.code !== grpc.status.OK) return nextStatus(callStatus);
            nextStatus({ code, details: "response replaced (injected by score-against-server)", metadata: new grpc.Metadata() });
          },
        });
      },
    });
}

async function scoreWithFirstResponseReplaced(code, id) {
  const retried = [];
  const replacing = new SentinelClient(address, {
    deadlineMs: 10_000,
    channelOptions: { interceptors: [replaceFirstResponse(code)] },
    onRetry: (event) => retried.push({ method: event.method, attempt: event.attempt, code: event.error.code }),
  });
  try {
    return { decision: Decision.toJSON(await replacing.score(transaction(id))), retries: retried };
  } finally {
    replacing.close();
  }
}

report.lostResponse = await scoreWithFirstResponseReplaced(grpc.status.UNAVAILABLE, "lost");
report.cancelledResponse = await scoreWithFirstResponseReplaced(grpc.status.CANCELLED, "cancelled");

const retries = [];
const unreachable = new SentinelClient(deadAddress, {
  deadlineMs: 5_000,
  maxAttempts: 3,
  initialBackoffMs: 10,
  onRetry: (event) => retries.push({ method: event.method, attempt: event.attempt, code: event.error.code }),
});
try {
  await unreachable.score(transaction("retry"));
  report.unreachable = { rejected: false, retries };
} catch (error) {
  report.unreachable = { rejected: true, code: error.code, retries };
} finally {
  unreachable.close();
}

console.log(JSON.stringify(report));
