package io.sentinelstream.v1;

import static io.grpc.MethodDescriptor.generateFullMethodName;

/**
 * <pre>
 * Queries the append-only decision ledger.
 * </pre>
 */
@io.grpc.stub.annotations.GrpcGenerated
public final class LedgerServiceGrpc {

  private LedgerServiceGrpc() {}

  public static final java.lang.String SERVICE_NAME = "sentinel.v1.LedgerService";

  // Static method descriptors that strictly reflect the proto.
  private static volatile io.grpc.MethodDescriptor<io.sentinelstream.v1.GetBalanceRequest,
      io.sentinelstream.v1.GetBalanceResponse> getGetBalanceMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "GetBalance",
      requestType = io.sentinelstream.v1.GetBalanceRequest.class,
      responseType = io.sentinelstream.v1.GetBalanceResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<io.sentinelstream.v1.GetBalanceRequest,
      io.sentinelstream.v1.GetBalanceResponse> getGetBalanceMethod() {
    io.grpc.MethodDescriptor<io.sentinelstream.v1.GetBalanceRequest, io.sentinelstream.v1.GetBalanceResponse> getGetBalanceMethod;
    if ((getGetBalanceMethod = LedgerServiceGrpc.getGetBalanceMethod) == null) {
      synchronized (LedgerServiceGrpc.class) {
        if ((getGetBalanceMethod = LedgerServiceGrpc.getGetBalanceMethod) == null) {
          LedgerServiceGrpc.getGetBalanceMethod = getGetBalanceMethod =
              io.grpc.MethodDescriptor.<io.sentinelstream.v1.GetBalanceRequest, io.sentinelstream.v1.GetBalanceResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "GetBalance"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.sentinelstream.v1.GetBalanceRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.sentinelstream.v1.GetBalanceResponse.getDefaultInstance()))
              .setSchemaDescriptor(new LedgerServiceMethodDescriptorSupplier("GetBalance"))
              .build();
        }
      }
    }
    return getGetBalanceMethod;
  }

  private static volatile io.grpc.MethodDescriptor<io.sentinelstream.v1.ListHistoryRequest,
      io.sentinelstream.v1.ListHistoryResponse> getListHistoryMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "ListHistory",
      requestType = io.sentinelstream.v1.ListHistoryRequest.class,
      responseType = io.sentinelstream.v1.ListHistoryResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<io.sentinelstream.v1.ListHistoryRequest,
      io.sentinelstream.v1.ListHistoryResponse> getListHistoryMethod() {
    io.grpc.MethodDescriptor<io.sentinelstream.v1.ListHistoryRequest, io.sentinelstream.v1.ListHistoryResponse> getListHistoryMethod;
    if ((getListHistoryMethod = LedgerServiceGrpc.getListHistoryMethod) == null) {
      synchronized (LedgerServiceGrpc.class) {
        if ((getListHistoryMethod = LedgerServiceGrpc.getListHistoryMethod) == null) {
          LedgerServiceGrpc.getListHistoryMethod = getListHistoryMethod =
              io.grpc.MethodDescriptor.<io.sentinelstream.v1.ListHistoryRequest, io.sentinelstream.v1.ListHistoryResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "ListHistory"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.sentinelstream.v1.ListHistoryRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.sentinelstream.v1.ListHistoryResponse.getDefaultInstance()))
              .setSchemaDescriptor(new LedgerServiceMethodDescriptorSupplier("ListHistory"))
              .build();
        }
      }
    }
    return getListHistoryMethod;
  }

  private static volatile io.grpc.MethodDescriptor<io.sentinelstream.v1.GetDecisionRequest,
      io.sentinelstream.v1.GetDecisionResponse> getGetDecisionMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "GetDecision",
      requestType = io.sentinelstream.v1.GetDecisionRequest.class,
      responseType = io.sentinelstream.v1.GetDecisionResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<io.sentinelstream.v1.GetDecisionRequest,
      io.sentinelstream.v1.GetDecisionResponse> getGetDecisionMethod() {
    io.grpc.MethodDescriptor<io.sentinelstream.v1.GetDecisionRequest, io.sentinelstream.v1.GetDecisionResponse> getGetDecisionMethod;
    if ((getGetDecisionMethod = LedgerServiceGrpc.getGetDecisionMethod) == null) {
      synchronized (LedgerServiceGrpc.class) {
        if ((getGetDecisionMethod = LedgerServiceGrpc.getGetDecisionMethod) == null) {
          LedgerServiceGrpc.getGetDecisionMethod = getGetDecisionMethod =
              io.grpc.MethodDescriptor.<io.sentinelstream.v1.GetDecisionRequest, io.sentinelstream.v1.GetDecisionResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "GetDecision"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.sentinelstream.v1.GetDecisionRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.sentinelstream.v1.GetDecisionResponse.getDefaultInstance()))
              .setSchemaDescriptor(new LedgerServiceMethodDescriptorSupplier("GetDecision"))
              .build();
        }
      }
    }
    return getGetDecisionMethod;
  }

  /**
   * Creates a new async stub that supports all call types for the service
   */
  public static LedgerServiceStub newStub(io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<LedgerServiceStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<LedgerServiceStub>() {
        @java.lang.Override
        public LedgerServiceStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new LedgerServiceStub(channel, callOptions);
        }
      };
    return LedgerServiceStub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports all types of calls on the service
   */
  public static LedgerServiceBlockingV2Stub newBlockingV2Stub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<LedgerServiceBlockingV2Stub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<LedgerServiceBlockingV2Stub>() {
        @java.lang.Override
        public LedgerServiceBlockingV2Stub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new LedgerServiceBlockingV2Stub(channel, callOptions);
        }
      };
    return LedgerServiceBlockingV2Stub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports unary and streaming output calls on the service
   */
  public static LedgerServiceBlockingStub newBlockingStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<LedgerServiceBlockingStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<LedgerServiceBlockingStub>() {
        @java.lang.Override
        public LedgerServiceBlockingStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new LedgerServiceBlockingStub(channel, callOptions);
        }
      };
    return LedgerServiceBlockingStub.newStub(factory, channel);
  }

  /**
   * Creates a new ListenableFuture-style stub that supports unary calls on the service
   */
  public static LedgerServiceFutureStub newFutureStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<LedgerServiceFutureStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<LedgerServiceFutureStub>() {
        @java.lang.Override
        public LedgerServiceFutureStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new LedgerServiceFutureStub(channel, callOptions);
        }
      };
    return LedgerServiceFutureStub.newStub(factory, channel);
  }

  /**
   * <pre>
   * Queries the append-only decision ledger.
   * </pre>
   */
  public interface AsyncService {

    /**
     * <pre>
     * Returns the balances of an account, one per currency. NOT_FOUND when the ledger has never
     * seen the account.
     * </pre>
     */
    default void getBalance(io.sentinelstream.v1.GetBalanceRequest request,
        io.grpc.stub.StreamObserver<io.sentinelstream.v1.GetBalanceResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getGetBalanceMethod(), responseObserver);
    }

    /**
     * <pre>
     * Returns an account's ledger entries, newest first, a page at a time.
     * </pre>
     */
    default void listHistory(io.sentinelstream.v1.ListHistoryRequest request,
        io.grpc.stub.StreamObserver<io.sentinelstream.v1.ListHistoryResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getListHistoryMethod(), responseObserver);
    }

    /**
     * <pre>
     * Returns the ledger entry of one transaction. NOT_FOUND when there is none.
     * </pre>
     */
    default void getDecision(io.sentinelstream.v1.GetDecisionRequest request,
        io.grpc.stub.StreamObserver<io.sentinelstream.v1.GetDecisionResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getGetDecisionMethod(), responseObserver);
    }
  }

  /**
   * Base class for the server implementation of the service LedgerService.
   * <pre>
   * Queries the append-only decision ledger.
   * </pre>
   */
  public static abstract class LedgerServiceImplBase
      implements io.grpc.BindableService, AsyncService {

    @java.lang.Override public final io.grpc.ServerServiceDefinition bindService() {
      return LedgerServiceGrpc.bindService(this);
    }
  }

  /**
   * A stub to allow clients to do asynchronous rpc calls to service LedgerService.
   * <pre>
   * Queries the append-only decision ledger.
   * </pre>
   */
  public static final class LedgerServiceStub
      extends io.grpc.stub.AbstractAsyncStub<LedgerServiceStub> {
    private LedgerServiceStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected LedgerServiceStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new LedgerServiceStub(channel, callOptions);
    }

    /**
     * <pre>
     * Returns the balances of an account, one per currency. NOT_FOUND when the ledger has never
     * seen the account.
     * </pre>
     */
    public void getBalance(io.sentinelstream.v1.GetBalanceRequest request,
        io.grpc.stub.StreamObserver<io.sentinelstream.v1.GetBalanceResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getGetBalanceMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Returns an account's ledger entries, newest first, a page at a time.
     * </pre>
     */
    public void listHistory(io.sentinelstream.v1.ListHistoryRequest request,
        io.grpc.stub.StreamObserver<io.sentinelstream.v1.ListHistoryResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getListHistoryMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Returns the ledger entry of one transaction. NOT_FOUND when there is none.
     * </pre>
     */
    public void getDecision(io.sentinelstream.v1.GetDecisionRequest request,
        io.grpc.stub.StreamObserver<io.sentinelstream.v1.GetDecisionResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getGetDecisionMethod(), getCallOptions()), request, responseObserver);
    }
  }

  /**
   * A stub to allow clients to do synchronous rpc calls to service LedgerService.
   * <pre>
   * Queries the append-only decision ledger.
   * </pre>
   */
  public static final class LedgerServiceBlockingV2Stub
      extends io.grpc.stub.AbstractBlockingStub<LedgerServiceBlockingV2Stub> {
    private LedgerServiceBlockingV2Stub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected LedgerServiceBlockingV2Stub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new LedgerServiceBlockingV2Stub(channel, callOptions);
    }

    /**
     * <pre>
     * Returns the balances of an account, one per currency. NOT_FOUND when the ledger has never
     * seen the account.
     * </pre>
     */
    public io.sentinelstream.v1.GetBalanceResponse getBalance(io.sentinelstream.v1.GetBalanceRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getGetBalanceMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Returns an account's ledger entries, newest first, a page at a time.
     * </pre>
     */
    public io.sentinelstream.v1.ListHistoryResponse listHistory(io.sentinelstream.v1.ListHistoryRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getListHistoryMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Returns the ledger entry of one transaction. NOT_FOUND when there is none.
     * </pre>
     */
    public io.sentinelstream.v1.GetDecisionResponse getDecision(io.sentinelstream.v1.GetDecisionRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getGetDecisionMethod(), getCallOptions(), request);
    }
  }

  /**
   * A stub to allow clients to do limited synchronous rpc calls to service LedgerService.
   * <pre>
   * Queries the append-only decision ledger.
   * </pre>
   */
  public static final class LedgerServiceBlockingStub
      extends io.grpc.stub.AbstractBlockingStub<LedgerServiceBlockingStub> {
    private LedgerServiceBlockingStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected LedgerServiceBlockingStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new LedgerServiceBlockingStub(channel, callOptions);
    }

    /**
     * <pre>
     * Returns the balances of an account, one per currency. NOT_FOUND when the ledger has never
     * seen the account.
     * </pre>
     */
    public io.sentinelstream.v1.GetBalanceResponse getBalance(io.sentinelstream.v1.GetBalanceRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getGetBalanceMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Returns an account's ledger entries, newest first, a page at a time.
     * </pre>
     */
    public io.sentinelstream.v1.ListHistoryResponse listHistory(io.sentinelstream.v1.ListHistoryRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getListHistoryMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Returns the ledger entry of one transaction. NOT_FOUND when there is none.
     * </pre>
     */
    public io.sentinelstream.v1.GetDecisionResponse getDecision(io.sentinelstream.v1.GetDecisionRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getGetDecisionMethod(), getCallOptions(), request);
    }
  }

  /**
   * A stub to allow clients to do ListenableFuture-style rpc calls to service LedgerService.
   * <pre>
   * Queries the append-only decision ledger.
   * </pre>
   */
  public static final class LedgerServiceFutureStub
      extends io.grpc.stub.AbstractFutureStub<LedgerServiceFutureStub> {
    private LedgerServiceFutureStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected LedgerServiceFutureStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new LedgerServiceFutureStub(channel, callOptions);
    }

    /**
     * <pre>
     * Returns the balances of an account, one per currency. NOT_FOUND when the ledger has never
     * seen the account.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<io.sentinelstream.v1.GetBalanceResponse> getBalance(
        io.sentinelstream.v1.GetBalanceRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getGetBalanceMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Returns an account's ledger entries, newest first, a page at a time.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<io.sentinelstream.v1.ListHistoryResponse> listHistory(
        io.sentinelstream.v1.ListHistoryRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getListHistoryMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Returns the ledger entry of one transaction. NOT_FOUND when there is none.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<io.sentinelstream.v1.GetDecisionResponse> getDecision(
        io.sentinelstream.v1.GetDecisionRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getGetDecisionMethod(), getCallOptions()), request);
    }
  }

  private static final int METHODID_GET_BALANCE = 0;
  private static final int METHODID_LIST_HISTORY = 1;
  private static final int METHODID_GET_DECISION = 2;

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
        case METHODID_GET_BALANCE:
          serviceImpl.getBalance((io.sentinelstream.v1.GetBalanceRequest) request,
              (io.grpc.stub.StreamObserver<io.sentinelstream.v1.GetBalanceResponse>) responseObserver);
          break;
        case METHODID_LIST_HISTORY:
          serviceImpl.listHistory((io.sentinelstream.v1.ListHistoryRequest) request,
              (io.grpc.stub.StreamObserver<io.sentinelstream.v1.ListHistoryResponse>) responseObserver);
          break;
        case METHODID_GET_DECISION:
          serviceImpl.getDecision((io.sentinelstream.v1.GetDecisionRequest) request,
              (io.grpc.stub.StreamObserver<io.sentinelstream.v1.GetDecisionResponse>) responseObserver);
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
        default:
          throw new AssertionError();
      }
    }
  }

  public static final io.grpc.ServerServiceDefinition bindService(AsyncService service) {
    return io.grpc.ServerServiceDefinition.builder(getServiceDescriptor())
        .addMethod(
          getGetBalanceMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              io.sentinelstream.v1.GetBalanceRequest,
              io.sentinelstream.v1.GetBalanceResponse>(
                service, METHODID_GET_BALANCE)))
        .addMethod(
          getListHistoryMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              io.sentinelstream.v1.ListHistoryRequest,
              io.sentinelstream.v1.ListHistoryResponse>(
                service, METHODID_LIST_HISTORY)))
        .addMethod(
          getGetDecisionMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              io.sentinelstream.v1.GetDecisionRequest,
              io.sentinelstream.v1.GetDecisionResponse>(
                service, METHODID_GET_DECISION)))
        .build();
  }

  private static abstract class LedgerServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoFileDescriptorSupplier, io.grpc.protobuf.ProtoServiceDescriptorSupplier {
    LedgerServiceBaseDescriptorSupplier() {}

    @java.lang.Override
    public com.google.protobuf.Descriptors.FileDescriptor getFileDescriptor() {
      return io.sentinelstream.v1.Ledger.getDescriptor();
    }

    @java.lang.Override
    public com.google.protobuf.Descriptors.ServiceDescriptor getServiceDescriptor() {
      return getFileDescriptor().findServiceByName("LedgerService");
    }
  }

  private static final class LedgerServiceFileDescriptorSupplier
      extends LedgerServiceBaseDescriptorSupplier {
    LedgerServiceFileDescriptorSupplier() {}
  }

  private static final class LedgerServiceMethodDescriptorSupplier
      extends LedgerServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoMethodDescriptorSupplier {
    private final java.lang.String methodName;

    LedgerServiceMethodDescriptorSupplier(java.lang.String methodName) {
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
      synchronized (LedgerServiceGrpc.class) {
        result = serviceDescriptor;
        if (result == null) {
          serviceDescriptor = result = io.grpc.ServiceDescriptor.newBuilder(SERVICE_NAME)
              .setSchemaDescriptor(new LedgerServiceFileDescriptorSupplier())
              .addMethod(getGetBalanceMethod())
              .addMethod(getListHistoryMethod())
              .addMethod(getGetDecisionMethod())
              .build();
        }
      }
    }
    return result;
  }
}
