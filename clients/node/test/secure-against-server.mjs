// The client's transport options against real servers, printed as one JSON object for
// tests/test_client_node.py to check.
//
// Usage: node test/secure-against-server.mjs <mTLS server address> <ca.pem> <client.pem> <client-key.pem>
//        <address of a plaintext server that records the authorization header it gets>
// Transactions ids start with "node-tls-".
import { readFileSync } from "node:fs";

import client from "../dist/index.js";

const { Decision, SentinelClient, TransactionType } = client;
const [address, ca, cert, key, recorderAddress] = process.argv.slice(2);

function transaction(id) {
  return {
    transactionId: `node-tls-${id}`,
    accountId: "C-node-tls",
    type: TransactionType.TRANSACTION_TYPE_PAYMENT,
    amount: { amount: "12.50", currency: "EUR" },
    eventTime: new Date(Date.now() - 1000),
  };
}

async function attempt(options, id) {
  const sentinel = new SentinelClient(address, { deadlineMs: 10_000, maxAttempts: 1, ...options });
  try {
    return { decision: Decision.toJSON(await sentinel.score(transaction(id))) };
  } catch (error) {
    return { code: error.code, details: error.details };
  } finally {
    sentinel.close();
  }
}

const report = {};
report.mtls = await attempt({ ca, cert, key }, "1"); // paths
report.mtlsPemText = await attempt({ ca: readFileSync(ca, "utf8"), cert: readFileSync(cert, "utf8"), key }, "2");
report.withoutClientCertificate = await attempt({ ca }, "3");

let issued = 0;
const tokens = new SentinelClient(recorderAddress, { deadlineMs: 10_000, tokenProvider: async () => `token-${++issued}` });
try {
  await tokens.score(transaction("t1"));
  await tokens.score(transaction("t2"));
} finally {
  tokens.close();
}
report.tokensIssued = issued;

try {
  new SentinelClient("192.0.2.1:50051", { token: "secret" }).close();
  report.plaintextTokenToAnotherMachine = "accepted";
} catch (error) {
  report.plaintextTokenToAnotherMachine = error.message;
}

console.log(JSON.stringify(report));
