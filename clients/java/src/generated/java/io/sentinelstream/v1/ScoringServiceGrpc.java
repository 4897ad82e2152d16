package io.sentinelstream.v1;

import static io.grpc.MethodDescriptor.generateFullMethodName;

/**
 * <pre>
 * Scores payment transactions: approve, review or decline, with a risk score and reasons.
 * Errors of unary calls: INVALID_ARGUMENT names the bad field (details carry a
 * google.rpc.BadRequest); ALREADY_EXISTS when an idempotency key is reused for a different
 * transaction; UNAVAILABLE when the decision cannot be recorded durably (retry with the same key);
 * DEADLINE_EXCEEDED when the caller's deadline passes first.
 * </pre>
 */
@io.grpc.stub.annotations.GrpcGenerated
public final class ScoringServiceGrpc {

  private ScoringServiceGrpc() {}

  public static final java.lang.String SERVICE_NAME = "sentinel.v1.ScoringService";

  // Static method descriptors that strictly reflect the proto.
  private static volatile io.grpc.MethodDescriptor<io.sentinelstream.v1.ScoreRequest,
      io.sentinelstream.v1.ScoreResponse> getScoreMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "Score",
      requestType = io.sentinelstream.v1.ScoreRequest.class,
      responseType = io.sentinelstream.v1.ScoreResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<io.sentinelstream.v1.ScoreRequest,
      io.sentinelstream.v1.ScoreResponse> getScoreMethod() {
    io.grpc.MethodDescriptor<io.sentinelstream.v1.ScoreRequest, io.sentinelstream.v1.ScoreResponse> getScoreMethod;
    if ((getScoreMethod = ScoringServiceGrpc.getScoreMethod) == null) {
      synchronized (ScoringServiceGrpc.class) {
        if ((getScoreMethod = ScoringServiceGrpc.getScoreMethod) == null) {
          ScoringServiceGrpc.getScoreMethod = getScoreMethod =
              io.grpc.MethodDescriptor.<io.sentinelstream.v1.ScoreRequest, io.sentinelstream.v1.ScoreResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "Score"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.sentinelstream.v1.ScoreRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.sentinelstream.v1.ScoreResponse.getDefaultInstance()))
              .setSchemaDescriptor(new ScoringServiceMethodDescriptorSupplier("Score"))
              .build();
        }
      }
    }
    return getScoreMethod;
  }

  private static volatile io.grpc.MethodDescriptor<io.sentinelstream.v1.ScoreBatchRequest,
      io.sentinelstream.v1.ScoreBatchResponse> getScoreBatchMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "ScoreBatch",
      requestType = io.sentinelstream.v1.ScoreBatchRequest.class,
      responseType = io.sentinelstream.v1.ScoreBatchResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<io.sentinelstream.v1.ScoreBatchRequest,
      io.sentinelstream.v1.ScoreBatchResponse> getScoreBatchMethod() {
    io.grpc.MethodDescriptor<io.sentinelstream.v1.ScoreBatchRequest, io.sentinelstream.v1.ScoreBatchResponse> getScoreBatchMethod;
    if ((getScoreBatchMethod = ScoringServiceGrpc.getScoreBatchMethod) == null) {
      synchronized (ScoringServiceGrpc.class) {
        if ((getScoreBatchMethod = ScoringServiceGrpc.getScoreBatchMethod) == null) {
          ScoringServiceGrpc.getScoreBatchMethod = getScoreBatchMethod =
              io.grpc.MethodDescriptor.<io.sentinelstream.v1.ScoreBatchRequest, io.sentinelstream.v1.ScoreBatchResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "ScoreBatch"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.sentinelstream.v1.ScoreBatchRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.sentinelstream.v1.ScoreBatchResponse.getDefaultInstance()))
              .setSchemaDescriptor(new ScoringServiceMethodDescriptorSupplier("ScoreBatch"))
              .build();
        }
      }
    }
    return getScoreBatchMethod;
  }

  private static volatile io.grpc.MethodDescriptor<io.sentinelstream.v1.ScoreStreamRequest,
      io.sentinelstream.v1.ScoreStreamResponse> getScoreStreamMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "ScoreStream",
      requestType = io.sentinelstream.v1.ScoreStreamRequest.class,
      responseType = io.sentinelstream.v1.ScoreStreamResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.BIDI_STREAMING)
  public static io.grpc.MethodDescriptor<io.sentinelstream.v1.ScoreStreamRequest,
      io.sentinelstream.v1.ScoreStreamResponse> getScoreStreamMethod() {
    io.grpc.MethodDescriptor<io.sentinelstream.v1.ScoreStreamRequest, io.sentinelstream.v1.ScoreStreamResponse> getScoreStreamMethod;
    if ((getScoreStreamMethod = ScoringServiceGrpc.getScoreStreamMethod) == null) {
      synchronized (ScoringServiceGrpc.class) {
        if ((getScoreStreamMethod = ScoringServiceGrpc.getScoreStreamMethod) == null) {
          ScoringServiceGrpc.getScoreStreamMethod = getScoreStreamMethod =
              io.grpc.MethodDescriptor.<io.sentinelstream.v1.ScoreStreamRequest, io.sentinelstream.v1.ScoreStreamResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.BIDI_STREAMING)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "ScoreStream"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.sentinelstream.v1.ScoreStreamRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.sentinelstream.v1.ScoreStreamResponse.getDefaultInstance()))
              .setSchemaDescriptor(new ScoringServiceMethodDescriptorSupplier("ScoreStream"))
              .build();
        }
      }
    }
    return getScoreStreamMethod;
  }

  /**
   * Creates a new async stub that supports all call types for the service
   */
  public static ScoringServiceStub newStub(io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<ScoringServiceStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<ScoringServiceStub>() {
        @java.lang.Override
        public ScoringServiceStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new ScoringServiceStub(channel, callOptions);
        }
      };
    return ScoringServiceStub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports all types of calls on the service
   */
  public static ScoringServiceBlockingV2Stub newBlockingV2Stub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<ScoringServiceBlockingV2Stub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<ScoringServiceBlockingV2Stub>() {
        @java.lang.Override
        public ScoringServiceBlockingV2Stub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new ScoringServiceBlockingV2Stub(channel, callOptions);
        }
      };
    return ScoringServiceBlockingV2Stub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports unary and streaming output calls on the service
   */
  public static ScoringServiceBlockingStub newBlockingStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<ScoringServiceBlockingStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<ScoringServiceBlockingStub>() {
        @java.lang.Override
        public ScoringServiceBlockingStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new ScoringServiceBlockingStub(channel, callOptions);
        }
      };
    return ScoringServiceBlockingStub.newStub(factory, channel);
  }

  /**
   * Creates a new ListenableFuture-style stub that supports unary calls on the service
   */
  public static ScoringServiceFutureStub newFutureStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<ScoringServiceFutureStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<ScoringServiceFutureStub>() {
        @java.lang.Override
        public ScoringServiceFutureStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new ScoringServiceFutureStub(channel, callOptions);
        }
      };
    return ScoringServiceFutureStub.newStub(factory, channel);
  }

  /**
   * <pre>
   * Scores payment transactions: approve, review or decline, with a risk score and reasons.
   * Errors of unary calls: INVALID_ARGUMENT names the bad field (details carry a
   * google.rpc.BadRequest); ALREADY_EXISTS when an idempotency key is reused for a different
   * transaction; UNAVAILABLE when the decision cannot be recorded durably (retry with the same key);
   * DEADLINE_EXCEEDED when the caller's deadline passes first.
   * </pre>
   */
  public interface AsyncService {

    /**
     * <pre>
     * Scores one transaction.
     * </pre>
     */
    default void score(io.sentinelstream.v1.ScoreRequest request,
        io.grpc.stub.StreamObserver<io.sentinelstream.v1.ScoreResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getScoreMethod(), responseObserver);
    }

    /**
     * <pre>
     * Scores many transactions in one call. Results come back in request order; an invalid item
     * gets an error in its place without failing the others.
     * </pre>
     */
    default void scoreBatch(io.sentinelstream.v1.ScoreBatchRequest request,
        io.grpc.stub.StreamObserver<io.sentinelstream.v1.ScoreBatchResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getScoreBatchMethod(), responseObserver);
    }

    /**
     * <pre>
     * Scores a long-lived stream of transactions: one response per request message, matched by
     * transaction id, possibly out of order.
     * </pre>
     */
    default io.grpc.stub.StreamObserver<io.sentinelstream.v1.ScoreStreamRequest> scoreStream(
        io.grpc.stub.StreamObserver<io.sentinelstream.v1.ScoreStreamResponse> responseObserver) {
      return io.grpc.stub.ServerCalls.asyncUnimplementedStreamingCall(getScoreStreamMethod(), responseObserver);
    }
  }

  /**
   * Base class for the server implementation of the service ScoringService.
   * <pre>
   * Scores payment transactions: approve, review or decline, with a risk score and reasons.
   * Errors of unary calls: INVALID_ARGUMENT names the bad field (details carry a
   * google.rpc.BadRequest); ALREADY_EXISTS when an idempotency key is reused for a different
   * transaction; UNAVAILABLE when the decision cannot be recorded durably (retry with the same key);
   * DEADLINE_EXCEEDED when the caller's deadline passes first.
   * </pre>
   */
  public static abstract class ScoringServiceImplBase
      implements io.grpc.BindableService, AsyncService {

    @java.lang.Override public final io.grpc.ServerServiceDefinition bindService() {
      return ScoringServiceGrpc.bindService(this);
    }
  }

  /**
   * A stub to allow clients to do asynchronous rpc calls to service ScoringService.
   * <pre>
   * Scores payment transactions: approve, review or decline, with a risk score and reasons.
   * Errors of unary calls: INVALID_ARGUMENT names the bad field (details carry a
   * google.rpc.BadRequest); ALREADY_EXISTS when an idempotency key is reused for a different
   * transaction; UNAVAILABLE when the decision cannot be recorded durably (retry with the same key);
   * DEADLINE_EXCEEDED when the caller's deadline passes first.
   * </pre>
   */
  public static final class ScoringServiceStub
      extends io.grpc.stub.AbstractAsyncStub<ScoringServiceStub> {
    private ScoringServiceStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected ScoringServiceStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new ScoringServiceStub(channel, callOptions);
    }

    /**
     * <pre>
     * Scores one transaction.
     * </pre>
     */
    public void score(io.sentinelstream.v1.ScoreRequest request,
        io.grpc.stub.StreamObserver<io.sentinelstream.v1.ScoreResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getScoreMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Scores many transactions in one call. Results come back in request order; an invalid item
     * gets an error in its place without failing the others.
     * </pre>
     */
    public void scoreBatch(io.sentinelstream.v1.ScoreBatchRequest request,
        io.grpc.stub.StreamObserver<io.sentinelstream.v1.ScoreBatchResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getScoreBatchMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Scores a long-lived stream of transactions: one response per request message, matched by
     * transaction id, possibly out of order.
     * </pre>
     */
    public io.grpc.stub.StreamObserver<io.sentinelstream.v1.ScoreStreamRequest> scoreStream(
        io.grpc.stub.StreamObserver<io.sentinelstream.v1.ScoreStreamResponse> responseObserver) {
      return io.grpc.stub.ClientCalls.asyncBidiStreamingCall(
          getChannel().newCall(getScoreStreamMethod(), getCallOptions()), responseObserver);
    }
  }

  /**
   * A stub to allow clients to do synchronous rpc calls to service ScoringService.
   * <pre>
   * Scores payment transactions: approve, review or decline, with a risk score and reasons.
   * Errors of unary calls: INVALID_ARGUMENT names the bad field (details carry a
   * google.rpc.BadRequest); ALREADY_EXISTS when an idempotency key is reused for a different
   * transaction; UNAVAILABLE when the decision cannot be recorded durably (retry with the same key);
   * DEADLINE_EXCEEDED when the caller's deadline passes first.
   * </pre>
   */
  public static final class ScoringServiceBlockingV2Stub
      extends io.grpc.stub.AbstractBlockingStub<ScoringServiceBlockingV2Stub> {
    private ScoringServiceBlockingV2Stub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected ScoringServiceBlockingV2Stub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new ScoringServiceBlockingV2Stub(channel, callOptions);
    }

    /**
     * <pre>
     * Scores one transaction.
     * </pre>
     */
    public io.sentinelstream.v1.ScoreResponse score(io.sentinelstream.v1.ScoreRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getScoreMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Scores many transactions in one call. Results come back in request order; an invalid item
     * gets an error in its place without failing the others.
     * </pre>
     */
    public io.sentinelstream.v1.ScoreBatchResponse scoreBatch(io.sentinelstream.v1.ScoreBatchRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getScoreBatchMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Scores a long-lived stream of transactions: one response per request message, matched by
     * transaction id, possibly out of order.
     * </pre>
     */
    @io.grpc.ExperimentalApi("https://github.com/grpc/grpc-java/issues/10918")
    public io.grpc.stub.BlockingClientCall<io.sentinelstream.v1.ScoreStreamRequest, io.sentinelstream.v1.ScoreStreamResponse>
        scoreStream() {
      return io.grpc.stub.ClientCalls.blockingBidiStreamingCall(
          getChannel(), getScoreStreamMethod(), getCallOptions());
    }
  }

  /**
   * A stub to allow clients to do limited synchronous rpc calls to service ScoringService.
   * <pre>
   * Scores payment transactions: approve, review or decline, with a risk score and reasons.
   * Errors of unary calls: INVALID_ARGUMENT names the bad field (details carry a
   * google.rpc.BadRequest); ALREADY_EXISTS when an idempotency key is reused for a different
   * transaction; UNAVAILABLE when the decision cannot be recorded durably (retry with the same key);
   * DEADLINE_EXCEEDED when the caller's deadline passes first.
   * </pre>
   */
  public static final class ScoringServiceBlockingStub
      extends io.grpc.stub.AbstractBlockingStub<ScoringServiceBlockingStub> {
    private ScoringServiceBlockingStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected ScoringServiceBlockingStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new ScoringServiceBlockingStub(channel, callOptions);
    }

    /**
     * <pre>
     * Scores one transaction.
     * </pre>
     */
    public io.sentinelstream.v1.ScoreResponse score(io.sentinelstream.v1.ScoreRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getScoreMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Scores many transactions in one call. Results come back in request order; an invalid item
     * gets an error in its place without failing the others.
     * </pre>
     */
    public io.sentinelstream.v1.ScoreBatchResponse scoreBatch(io.sentinelstream.v1.ScoreBatchRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getScoreBatchMethod(), getCallOptions(), request);
    }
  }

  /**
   * A stub to allow clients to do ListenableFuture-style rpc calls to service ScoringService.
   * <pre>
   * Scores payment transactions: approve, review or decline, with a risk score and reasons.
   * Errors of unary calls: INVALID_ARGUMENT names the bad field (details carry a
   * google.rpc.BadRequest); ALREADY_EXISTS when an idempotency key is reused for a different
   * transaction; UNAVAILABLE when the decision cannot be recorded durably (retry with the same key);
   * DEADLINE_EXCEEDED when the caller's deadline passes first.
   * </pre>
   */
  public static final class ScoringServiceFutureStub
      extends io.grpc.stub.AbstractFutureStub<ScoringServiceFutureStub> {
    private ScoringServiceFutureStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected ScoringServiceFutureStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new ScoringServiceFutureStub(channel, callOptions);
    }

    /**
     * <pre>
     * Scores one transaction.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<io.sentinelstream.v1.ScoreResponse> score(
        io.sentinelstream.v1.ScoreRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getScoreMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Scores many transactions in one call. Results come back in request order; an invalid item
     * gets an error in its place without failing the others.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<io.sentinelstream.v1.ScoreBatchResponse> scoreBatch(
        io.sentinelstream.v1.ScoreBatchRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getScoreBatchMethod(), getCallOptions()), request);
    }
  }

  private static final int METHODID_SCORE = 0;
  private static final int METHODID_SCORE_BATCH = 1;
  private static final int METHODID_SCORE_STREAM = 2;

  private static final class MethodHandlers<Req, Resp> implements
      io.grpc.stub.ServerCalls.UnaryMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.ServerStreamingMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.ClientStreamingMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.BidiStreamingMethod<Req, Resp> {
    private final AsyncService serviceImpl;
    private final int methodId;

    MethodHandlers(AsyncService serviceImpl, int methodId) {
      this.serviceImpl = serviceImpl;
      this.methodId = methodId;
    }

    @java.lang.Override
    @java.lang.SuppressWarnings("unchecked")
    public void invoke(Req request, io.grpc.stub.StreamObserver<Resp> responseObserver) {
      switch (methodId) {
        case METHODID_SCORE:
          serviceImpl.score((io.sentinelstream.v1.ScoreRequest) request,
              (io.grpc.stub.StreamObserver<io.sentinelstream.v1.ScoreResponse>) responseObserver);
          break;
        case METHODID_SCORE_BATCH:
          serviceImpl.scoreBatch((io.sentinelstream.v1.ScoreBatchRequest) request,
              (io.grpc.stub.StreamObserver<io.sentinelstream.v1.ScoreBatchResponse>) responseObserver);
          break;
        default:
          throw new AssertionError();
      }
    }

    @java.lang.Override
    @java.lang.SuppressWarnings("unchecked")
    public io.grpc.stub.StreamObserver<Req> invoke(
        io.grpc.stub.StreamObserver<Resp> responseObserver) {
      switch (methodId) {
        case METHODID_SCORE_STREAM:
          return (io.grpc.stub.StreamObserver<Req>) serviceImpl.scoreStream(
              (io.grpc.stub.StreamObserver<io.sentinelstream.v1.ScoreStreamResponse>) responseObserver);
        default:
          throw new AssertionError();
      }
    }
  }

  public static final io.grpc.ServerServiceDefinition bindService(AsyncService service) {
    return io.grpc.ServerServiceDefinition.builder(getServiceDescriptor())
        .addMethod(
          getScoreMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              io.sentinelstream.v1.ScoreRequest,
              io.sentinelstream.v1.ScoreResponse>(
                service, METHODID_SCORE)))
        .addMethod(
          getScoreBatchMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              io.sentinelstream.v1.ScoreBatchRequest,
              io.sentinelstream.v1.ScoreBatchResponse>(
                service, METHODID_SCORE_BATCH)))
        .addMethod(
          getScoreStreamMethod(),
          io.grpc.stub.ServerCalls.asyncBidiStreamingCall(
            new MethodHandlers<
              io.sentinelstream.v1.ScoreStreamRequest,
              io.sentinelstream.v1.ScoreStreamResponse>(
                service, METHODID_SCORE_STREAM)))
        .build();
  }

  private static abstract class ScoringServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoFileDescriptorSupplier, io.grpc.protobuf.ProtoServiceDescriptorSupplier {
    ScoringServiceBaseDescriptorSupplier() {}

    @java.lang.Override
    public com.google.protobuf.Descriptors.FileDescriptor getFileDescriptor() {
      return io.sentinelstream.v1.Scoring.getDescriptor();
    }

    @java.lang.Override
    public com.google.protobuf.Descriptors.ServiceDescriptor getServiceDescriptor() {
      return getFileDescriptor().findServiceByName("ScoringService");
    }
  }

  private static final class ScoringServiceFileDescriptorSupplier
      extends ScoringServiceBaseDescriptorSupplier {
    ScoringServiceFileDescriptorSupplier() {}
  }

  private static final class ScoringServiceMethodDescriptorSupplier
      extends ScoringServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoMethodDescriptorSupplier {
    private final java.lang.String methodName;

    ScoringServiceMethodDescriptorSupplier(java.lang.String methodName) {
      this.methodName = methodName;
    }

    @java.lang.Override
    public com.google.protobuf.Descriptors.MethodDescriptor getMethodDescriptor() {
      return getServiceDescriptor().findMethodByName(methodName);
    }
  }

  private static volatile io.grpc.ServiceDescriptor serviceDescriptor;

  public static io.grpc.ServiceDescriptor getServiceDescriptor() {
    io.grpc.ServiceDescriptor result = serviceDescriptor;
    if (result == null) {
      synchronized (ScoringServiceGrpc.class) {
        result = serviceDescriptor;
        if (result == null) {
          serviceDescriptor = result = io.grpc.ServiceDescriptor.newBuilder(SERVICE_NAME)
              .setSchemaDescriptor(new ScoringServiceFileDescriptorSupplier())
              .addMethod(getScoreMethod())
              .addMethod(getScoreBatchMethod())
              .addMethod(getScoreStreamMethod())
              .build();
        }
      }
    }
    return result;
  }
}
