package io.sentinelstream.client;

import com.google.gson.Gson;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.MessageOrBuilder;
import com.google.protobuf.util.JsonFormat;
import com.google.protobuf.util.Timestamps;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.Context;
import io.grpc.ForwardingClientCall;
import io.grpc.ForwardingClientCallListener;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import io.sentinelstream.v1.GeoLocation;
import io.sentinelstream.v1.Money;
import io.sentinelstream.v1.ScoreBatchResult;
import io.sentinelstream.v1.ScoreStreamResponse;
import io.sentinelstream.v1.Transaction;
import io.sentinelstream.v1.TransactionType;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Calls a running SentinelStream server through the client and prints what came back as one JSON
 * object, for tests/test_client_java.py to check (the Java twin of clients/node/test/
 * score-against-server.mjs).
 *
 * <p>Usage: ScoreCheck &lt;server address&gt; &lt;address where nothing listens&gt; [id prefix]
 */
public final class ScoreCheck {
  private static String prefix = "java";

  private ScoreCheck() {}

  static Transaction transaction(String id) {
    return Transaction.newBuilder()
        .setTransactionId(prefix + "-" + id)
        .setAccountId("C-" + prefix + "-1")
        .setCounterpartyId("M-" + prefix + "-1")
        .setType(TransactionType.TRANSACTION_TYPE_PAYMENT)
        .setAmount(Money.newBuilder().setAmount("129.90").setCurrency("EUR"))
        .setEventTime(Timestamps.fromMillis(System.currentTimeMillis() - 1000))
        .setGeo(GeoLocation.newBuilder().setLatitude(52.52).setLongitude(13.4).setCountry("DE"))
        .setDeviceId(prefix + "-device")
        .build();
  }

  /** A message in proto3 JSON (camelCase names, enums by name), as the Node twin prints it. */
  static JsonElement json(MessageOrBuilder message) throws InvalidProtocolBufferException {
    return JsonParser.parseString(JsonFormat.printer().print(message));
  }

  static JsonObject failure(StatusRuntimeException error) {
    JsonObject described = new JsonObject();
    described.addProperty("rejected", true);
    described.addProperty("code", error.getStatus().getCode().value());
    JsonArray fields = new JsonArray();
    SentinelClient.fieldViolations(error).forEach(violation -> fields.add(violation.getField()));
    described.add("fieldViolations", fields);
    return described;
  }

  static SentinelClient.Builder recordingRetries(SentinelClient.Builder builder, JsonArray into) {
    return builder.onRetry(event -> {
      JsonObject retry = new JsonObject();
      retry.addProperty("method", event.method());
      retry.addProperty("attempt", event.attempt());
      retry.addProperty("code", event.error().getStatus().getCode().value());
      into.add(retry);
    });
  }

  /**
   * Makes the first call's answer get replaced by an error on the way back: the server has scored and
   * recorded the transaction, the caller sees the error, as after a connection dropped mid-call
   * (UNAVAILABLE) or a draining server or proxy cancelled it (CANCELLED).
   */
  static final class ReplaceFirstResponse implements ClientInterceptor {
    private final AtomicBoolean used = new AtomicBoolean();
    private final Status replacement;

    ReplaceFirstResponse(Status replacement) {
      this.replacement = replacement;
    }

    @Override
    public <Q, R> ClientCall<Q, R> interceptCall(MethodDescriptor<Q, R> method, CallOptions options, Channel next) {
      return new ForwardingClientCall.SimpleForwardingClientCall<>(next.newCall(method, options)) {
        @Override
        public void start(Listener<R> listener, Metadata headers) {
          super.start(new ForwardingClientCallListener.SimpleForwardingClientCallListener<>(listener) {
            private boolean replacing;

            @Override
            public void onMessage(R message) {
              if (used.compareAndSet(false, true)) {
                replacing = true;
              } else {
                super.onMessage(message);
              }
            }

            @Override
            public void onClose(Status status, Metadata trailers) {
              if (replacing && status.isOk()) {
                super.onClose(replacement.withDescription("response replaced (injected by ScoreCheck)"), new Metadata());
              } else {
                super.onClose(status, trailers);
              }
            }
          }, headers);
        }
      };
    }
  }

  /** Scores transaction id through a client whose first answer is replaced by replacement. */
  static JsonObject scoreWithFirstResponseReplaced(String address, Status replacement, String id) throws Exception {
    JsonArray retries = new JsonArray();
    SentinelClient.Builder builder = SentinelClient.newBuilder(address).deadline(Duration.ofSeconds(10))
        .intercept(new ReplaceFirstResponse(replacement));
    try (SentinelClient client = recordingRetries(builder, retries).build()) {
      JsonObject answered = new JsonObject();
      answered.add("decision", json(client.score(transaction(id))));
      answered.add("retries", retries);
      return answered;
    }
  }

  static JsonArray scoreStream(SentinelClient client) throws Exception {
    JsonArray responses = new JsonArray();
    CompletableFuture<Void> done = new CompletableFuture<>();
    SentinelClient.ScoreStream stream = client.scoreStream(new StreamObserver<>() {
      @Override
      public void onNext(ScoreStreamResponse response) {
        try {
          synchronized (responses) {
            responses.add(json(response));
          }
        } catch (InvalidProtocolBufferException impossible) {
          done.completeExceptionally(impossible);
        }
      }

      @Override
      public void onError(Throwable error) {
        done.completeExceptionally(error);
      }

      @Override
      public void onCompleted() {
        done.complete(null);
      }
    });
    for (int i = 0; i < 5; i++) {
      stream.send(transaction("s" + i));
    }
    stream.send(transaction("s-bad").toBuilder().setType(TransactionType.TRANSACTION_TYPE_UNSPECIFIED).build());
    stream.complete();
    done.get(60, TimeUnit.SECONDS);
    return responses;
  }

  public static void main(String[] arguments) throws Exception {
    String address = arguments[0];
    String deadAddress = arguments[1];
    if (arguments.length > 2) {
      prefix = arguments[2];
    }
    JsonObject report = new JsonObject();
    try (SentinelClient client = SentinelClient.newBuilder(address).deadline(Duration.ofSeconds(10)).build()) {
      Transaction first = transaction("1");
      report.add("score", json(client.score(first)));
      report.add("scoreAgain", json(client.score(first))); // same key, same transaction: replayed
      try {
        client.score(transaction("bad").toBuilder().setAmount(Money.newBuilder().setAmount("-3").setCurrency("EUR")).build());
        report.addProperty("invalid", "accepted");
      } catch (StatusRuntimeException error) {
        report.add("invalid", failure(error));
      }
      List<Transaction> batch = List.of(
          transaction("b0"),
          transaction("b1").toBuilder().setAmount(Money.newBuilder().setAmount("12").setCurrency("XYZ")).build(),
          transaction("b2"));
      JsonArray results = new JsonArray();
      for (ScoreBatchResult result : client.scoreBatch(batch)) {
        results.add(json(result));
      }
      report.add("batch", results);
      report.add("stream", scoreStream(client));
    }

    report.add("lostResponse", scoreWithFirstResponseReplaced(address, Status.UNAVAILABLE, "lost"));
    report.add("cancelledResponse", scoreWithFirstResponseReplaced(address, Status.CANCELLED, "cancelled"));

    // A call its caller cancelled ends CANCELLED at once and is not retried.
    JsonArray callerRetries = new JsonArray();
    SentinelClient.Builder patient = SentinelClient.newBuilder(address).deadline(Duration.ofSeconds(10));
    try (SentinelClient client = recordingRetries(patient, callerRetries).build()) {
      Context.CancellableContext cancelled = Context.current().withCancellation();
      cancelled.cancel(null);
      JsonObject callerCancelled = new JsonObject();
      try {
        cancelled.call(() -> client.score(transaction("caller-cancelled")));
        callerCancelled.addProperty("rejected", false);
      } catch (StatusRuntimeException error) {
        callerCancelled = failure(error);
      }
      callerCancelled.add("retries", callerRetries);
      report.add("callerCancelled", callerCancelled);
    }

    JsonArray unreachableRetries = new JsonArray();
    SentinelClient.Builder dead = SentinelClient.newBuilder(deadAddress).deadline(Duration.ofSeconds(5))
        .maxAttempts(3).backoff(Duration.ofMillis(10), Duration.ofMillis(500));
    try (SentinelClient client = recordingRetries(dead, unreachableRetries).build()) {
      JsonObject unreachable = new JsonObject();
      try {
        client.score(transaction("retry"));
        unreachable.addProperty("rejected", false);
      } catch (StatusRuntimeException error) {
        unreachable = failure(error);
      }
      unreachable.add("retries", unreachableRetries);
      report.add("unreachable", unreachable);
    }
    System.out.println(new Gson().toJson(report));
  }
}
