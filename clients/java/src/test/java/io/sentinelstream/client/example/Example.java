package io.sentinelstream.client.example;

import com.google.protobuf.util.Timestamps;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.sentinelstream.client.SentinelClient;
import io.sentinelstream.v1.Decision;
import io.sentinelstream.v1.Money;
import io.sentinelstream.v1.Transaction;
import io.sentinelstream.v1.TransactionType;
import java.time.Duration;

/** Scores one transaction and prints the decision (the README's example). Argument: the server address. */
public final class Example {
  private Example() {}

  public static void main(String[] arguments) throws Exception {
    String address = arguments.length > 0 ? arguments[0] : "127.0.0.1:50051";
    try (SentinelClient client = SentinelClient.newBuilder(address).deadline(Duration.ofSeconds(2)).build()) {
      Transaction transaction = Transaction.newBuilder()
          .setTransactionId("example-" + System.nanoTime())
          .setAccountId("C-example")
          .setType(TransactionType.TRANSACTION_TYPE_PAYMENT)
          .setAmount(Money.newBuilder().setAmount("42.00").setCurrency("EUR"))
          .setEventTime(Timestamps.fromMillis(System.currentTimeMillis()))
          .build();
      try {
        Decision decision = client.score(transaction);
        System.out.printf("%s %s risk=%.3f model=%s%n", decision.getTransactionId(), decision.getOutcome(),
            decision.getRiskScore(), decision.getModelVersion());
      } catch (StatusRuntimeException error) {
        if (error.getStatus().getCode() == Status.Code.INVALID_ARGUMENT) {
          SentinelClient.fieldViolations(error)
              .forEach(v -> System.err.println("invalid " + v.getField() + ": " + v.getDescription()));
        }
        throw error;
      }
    }
  }
}
