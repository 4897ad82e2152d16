package io.sentinelstream.v1;

import static io.grpc.MethodDescriptor.generateFullMethodName;

/**
 * <pre>
 * Manages rules. Changes take effect on every worker within a second.
 * </pre>
 */
@io.grpc.stub.annotations.GrpcGenerated
public final class RulesServiceGrpc {

  private RulesServiceGrpc() {}

  public static final java.lang.String SERVICE_NAME = "sentinel.v1.RulesService";

  // Static method descriptors that strictly reflect the proto.
  private static volatile io.grpc.MethodDescriptor<io.sentinelstream.v1.ListRulesRequest,
      io.sentinelstream.v1.ListRulesResponse> getListRulesMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "ListRules",
      requestType = io.sentinelstream.v1.ListRulesRequest.class,
      responseType = io.sentinelstream.v1.ListRulesResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<io.sentinelstream.v1.ListRulesRequest,
      io.sentinelstream.v1.ListRulesResponse> getListRulesMethod() {
    io.grpc.MethodDescriptor<io.sentinelstream.v1.ListRulesRequest, io.sentinelstream.v1.ListRulesResponse> getListRulesMethod;
    if ((getListRulesMethod = RulesServiceGrpc.getListRulesMethod) == null) {
      synchronized (RulesServiceGrpc.class) {
        if ((getListRulesMethod = RulesServiceGrpc.getListRulesMethod) == null) {
          RulesServiceGrpc.getListRulesMethod = getListRulesMethod =
              io.grpc.MethodDescriptor.<io.sentinelstream.v1.ListRulesRequest, io.sentinelstream.v1.ListRulesResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "ListRules"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.sentinelstream.v1.ListRulesRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.sentinelstream.v1.ListRulesResponse.getDefaultInstance()))
              .setSchemaDescriptor(new RulesServiceMethodDescriptorSupplier("ListRules"))
              .build();
        }
      }
    }
    return getListRulesMethod;
  }

  private static volatile io.grpc.MethodDescriptor<io.sentinelstream.v1.GetRuleRequest,
      io.sentinelstream.v1.GetRuleResponse> getGetRuleMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "GetRule",
      requestType = io.sentinelstream.v1.GetRuleRequest.class,
      responseType = io.sentinelstream.v1.GetRuleResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<io.sentinelstream.v1.GetRuleRequest,
      io.sentinelstream.v1.GetRuleResponse> getGetRuleMethod() {
    io.grpc.MethodDescriptor<io.sentinelstream.v1.GetRuleRequest, io.sentinelstream.v1.GetRuleResponse> getGetRuleMethod;
    if ((getGetRuleMethod = RulesServiceGrpc.getGetRuleMethod) == null) {
      synchronized (RulesServiceGrpc.class) {
        if ((getGetRuleMethod = RulesServiceGrpc.getGetRuleMethod) == null) {
          RulesServiceGrpc.getGetRuleMethod = getGetRuleMethod =
              io.grpc.MethodDescriptor.<io.sentinelstream.v1.GetRuleRequest, io.sentinelstream.v1.GetRuleResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "GetRule"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.sentinelstream.v1.GetRuleRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.sentinelstream.v1.GetRuleResponse.getDefaultInstance()))
              .setSchemaDescriptor(new RulesServiceMethodDescriptorSupplier("GetRule"))
              .build();
        }
      }
    }
    return getGetRuleMethod;
  }

  private static volatile io.grpc.MethodDescriptor<io.sentinelstream.v1.PutRuleRequest,
      io.sentinelstream.v1.PutRuleResponse> getPutRuleMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "PutRule",
      requestType = io.sentinelstream.v1.PutRuleRequest.class,
      responseType = io.sentinelstream.v1.PutRuleResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<io.sentinelstream.v1.PutRuleRequest,
      io.sentinelstream.v1.PutRuleResponse> getPutRuleMethod() {
    io.grpc.MethodDescriptor<io.sentinelstream.v1.PutRuleRequest, io.sentinelstream.v1.PutRuleResponse> getPutRuleMethod;
    if ((getPutRuleMethod = RulesServiceGrpc.getPutRuleMethod) == null) {
      synchronized (RulesServiceGrpc.class) {
        if ((getPutRuleMethod = RulesServiceGrpc.getPutRuleMethod) == null) {
          RulesServiceGrpc.getPutRuleMethod = getPutRuleMethod =
              io.grpc.MethodDescriptor.<io.sentinelstream.v1.PutRuleRequest, io.sentinelstream.v1.PutRuleResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "PutRule"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.sentinelstream.v1.PutRuleRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.sentinelstream.v1.PutRuleResponse.getDefaultInstance()))
              .setSchemaDescriptor(new RulesServiceMethodDescriptorSupplier("PutRule"))
              .build();
        }
      }
    }
    return getPutRuleMethod;
  }

  private static volatile io.grpc.MethodDescriptor<io.sentinelstream.v1.DeleteRuleRequest,
      io.sentinelstream.v1.DeleteRuleResponse> getDeleteRuleMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "DeleteRule",
      requestType = io.sentinelstream.v1.DeleteRuleRequest.class,
      responseType = io.sentinelstream.v1.DeleteRuleResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<io.sentinelstream.v1.DeleteRuleRequest,
      io.sentinelstream.v1.DeleteRuleResponse> getDeleteRuleMethod() {
    io.grpc.MethodDescriptor<io.sentinelstream.v1.DeleteRuleRequest, io.sentinelstream.v1.DeleteRuleResponse> getDeleteRuleMethod;
    if ((getDeleteRuleMethod = RulesServiceGrpc.getDeleteRuleMethod) == null) {
      synchronized (RulesServiceGrpc.class) {
        if ((getDeleteRuleMethod = RulesServiceGrpc.getDeleteRuleMethod) == null) {
          RulesServiceGrpc.getDeleteRuleMethod = getDeleteRuleMethod =
              io.grpc.MethodDescriptor.<io.sentinelstream.v1.DeleteRuleRequest, io.sentinelstream.v1.DeleteRuleResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "DeleteRule"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.sentinelstream.v1.DeleteRuleRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.sentinelstream.v1.DeleteRuleResponse.getDefaultInstance()))
              .setSchemaDescriptor(new RulesServiceMethodDescriptorSupplier("DeleteRule"))
              .build();
        }
      }
    }
    return getDeleteRuleMethod;
  }

  private static volatile io.grpc.MethodDescriptor<io.sentinelstream.v1.TestRuleRequest,
      io.sentinelstream.v1.TestRuleResponse> getTestRuleMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "TestRule",
      requestType = io.sentinelstream.v1.TestRuleRequest.class,
      responseType = io.sentinelstream.v1.TestRuleResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<io.sentinelstream.v1.TestRuleRequest,
      io.sentinelstream.v1.TestRuleResponse> getTestRuleMethod() {
    io.grpc.MethodDescriptor<io.sentinelstream.v1.TestRuleRequest, io.sentinelstream.v1.TestRuleResponse> getTestRuleMethod;
    if ((getTestRuleMethod = RulesServiceGrpc.getTestRuleMethod) == null) {
      synchronized (RulesServiceGrpc.class) {
        if ((getTestRuleMethod = RulesServiceGrpc.getTestRuleMethod) == null) {
          RulesServiceGrpc.getTestRuleMethod = getTestRuleMethod =
              io.grpc.MethodDescriptor.<io.sentinelstream.v1.TestRuleRequest, io.sentinelstream.v1.TestRuleResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "TestRule"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.sentinelstream.v1.TestRuleRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.sentinelstream.v1.TestRuleResponse.getDefaultInstance()))
              .setSchemaDescriptor(new RulesServiceMethodDescriptorSupplier("TestRule"))
              .build();
        }
      }
    }
    return getTestRuleMethod;
  }

  private static volatile io.grpc.MethodDescriptor<io.sentinelstream.v1.ListRuleVersionsRequest,
      io.sentinelstream.v1.ListRuleVersionsResponse> getListRuleVersionsMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "ListRuleVersions",
      requestType = io.sentinelstream.v1.ListRuleVersionsRequest.class,
      responseType = io.sentinelstream.v1.ListRuleVersionsResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<io.sentinelstream.v1.ListRuleVersionsRequest,
      io.sentinelstream.v1.ListRuleVersionsResponse> getListRuleVersionsMethod() {
    io.grpc.MethodDescriptor<io.sentinelstream.v1.ListRuleVersionsRequest, io.sentinelstream.v1.ListRuleVersionsResponse> getListRuleVersionsMethod;
    if ((getListRuleVersionsMethod = RulesServiceGrpc.getListRuleVersionsMethod) == null) {
      synchronized (RulesServiceGrpc.class) {
        if ((getListRuleVersionsMethod = RulesServiceGrpc.getListRuleVersionsMethod) == null) {
          RulesServiceGrpc.getListRuleVersionsMethod = getListRuleVersionsMethod =
              io.grpc.MethodDescriptor.<io.sentinelstream.v1.ListRuleVersionsRequest, io.sentinelstream.v1.ListRuleVersionsResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "ListRuleVersions"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.sentinelstream.v1.ListRuleVersionsRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.sentinelstream.v1.ListRuleVersionsResponse.getDefaultInstance()))
              .setSchemaDescriptor(new RulesServiceMethodDescriptorSupplier("ListRuleVersions"))
              .build();
        }
      }
    }
    return getListRuleVersionsMethod;
  }

  private static volatile io.grpc.MethodDescriptor<io.sentinelstream.v1.RollbackRuleRequest,
      io.sentinelstream.v1.RollbackRuleResponse> getRollbackRuleMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "RollbackRule",
      requestType = io.sentinelstream.v1.RollbackRuleRequest.class,
      responseType = io.sentinelstream.v1.RollbackRuleResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<io.sentinelstream.v1.RollbackRuleRequest,
      io.sentinelstream.v1.RollbackRuleResponse> getRollbackRuleMethod() {
    io.grpc.MethodDescriptor<io.sentinelstream.v1.RollbackRuleRequest, io.sentinelstream.v1.RollbackRuleResponse> getRollbackRuleMethod;
    if ((getRollbackRuleMethod = RulesServiceGrpc.getRollbackRuleMethod) == null) {
      synchronized (RulesServiceGrpc.class) {
        if ((getRollbackRuleMethod = RulesServiceGrpc.getRollbackRuleMethod) == null) {
          RulesServiceGrpc.getRollbackRuleMethod = getRollbackRuleMethod =
              io.grpc.MethodDescriptor.<io.sentinelstream.v1.RollbackRuleRequest, io.sentinelstream.v1.RollbackRuleResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "RollbackRule"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.sentinelstream.v1.RollbackRuleRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.sentinelstream.v1.RollbackRuleResponse.getDefaultInstance()))
              .setSchemaDescriptor(new RulesServiceMethodDescriptorSupplier("RollbackRule"))
              .build();
        }
      }
    }
    return getRollbackRuleMethod;
  }

  /**
   * Creates a new async stub that supports all call types for the service
   */
  public static RulesServiceStub newStub(io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<RulesServiceStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<RulesServiceStub>() {
        @java.lang.Override
        public RulesServiceStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new RulesServiceStub(channel, callOptions);
        }
      };
    return RulesServiceStub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports all types of calls on the service
   */
  public static RulesServiceBlockingV2Stub newBlockingV2Stub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<RulesServiceBlockingV2Stub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<RulesServiceBlockingV2Stub>() {
        @java.lang.Override
        public RulesServiceBlockingV2Stub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new RulesServiceBlockingV2Stub(channel, callOptions);
        }
      };
    return RulesServiceBlockingV2Stub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports unary and streaming output calls on the service
   */
  public static RulesServiceBlockingStub newBlockingStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<RulesServiceBlockingStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<RulesServiceBlockingStub>() {
        @java.lang.Override
        public RulesServiceBlockingStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new RulesServiceBlockingStub(channel, callOptions);
        }
      };
    return RulesServiceBlockingStub.newStub(factory, channel);
  }

  /**
   * Creates a new ListenableFuture-style stub that supports unary calls on the service
   */
  public static RulesServiceFutureStub newFutureStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<RulesServiceFutureStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<RulesServiceFutureStub>() {
        @java.lang.Override
        public RulesServiceFutureStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new RulesServiceFutureStub(channel, callOptions);
        }
      };
    return RulesServiceFutureStub.newStub(factory, channel);
  }

  /**
   * <pre>
   * Manages rules. Changes take effect on every worker within a second.
   * </pre>
   */
  public interface AsyncService {

    /**
     * <pre>
     * Lists the current version of every rule.
     * </pre>
     */
    default void listRules(io.sentinelstream.v1.ListRulesRequest request,
        io.grpc.stub.StreamObserver<io.sentinelstream.v1.ListRulesResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getListRulesMethod(), responseObserver);
    }

    /**
     * <pre>
     * Returns one rule, at its current or at a given version.
     * </pre>
     */
    default void getRule(io.sentinelstream.v1.GetRuleRequest request,
        io.grpc.stub.StreamObserver<io.sentinelstream.v1.GetRuleResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getGetRuleMethod(), responseObserver);
    }

    /**
     * <pre>
     * Creates a rule or adds a new version of it. INVALID_ARGUMENT names the position of a
     * syntax or type error in the expression; ABORTED when expected_version is stale.
     * </pre>
     */
    default void putRule(io.sentinelstream.v1.PutRuleRequest request,
        io.grpc.stub.StreamObserver<io.sentinelstream.v1.PutRuleResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getPutRuleMethod(), responseObserver);
    }

    /**
     * <pre>
     * Deletes a rule (a new version marked deleted; history is kept).
     * </pre>
     */
    default void deleteRule(io.sentinelstream.v1.DeleteRuleRequest request,
        io.grpc.stub.StreamObserver<io.sentinelstream.v1.DeleteRuleResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getDeleteRuleMethod(), responseObserver);
    }

    /**
     * <pre>
     * Evaluates a stored or a draft rule against one transaction without recording anything.
     * </pre>
     */
    default void testRule(io.sentinelstream.v1.TestRuleRequest request,
        io.grpc.stub.StreamObserver<io.sentinelstream.v1.TestRuleResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getTestRuleMethod(), responseObserver);
    }

    /**
     * <pre>
     * Lists every version of a rule, newest first.
     * </pre>
     */
    default void listRuleVersions(io.sentinelstream.v1.ListRuleVersionsRequest request,
        io.grpc.stub.StreamObserver<io.sentinelstream.v1.ListRuleVersionsResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getListRuleVersionsMethod(), responseObserver);
    }

    /**
     * <pre>
     * Makes an earlier version current again, as a new version.
     * </pre>
     */
    default void rollbackRule(io.sentinelstream.v1.RollbackRuleRequest request,
        io.grpc.stub.StreamObserver<io.sentinelstream.v1.RollbackRuleResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getRollbackRuleMethod(), responseObserver);
    }
  }

  /**
   * Base class for the server implementation of the service RulesService.
   * <pre>
   * Manages rules. Changes take effect on every worker within a second.
   * </pre>
   */
  public static abstract class RulesServiceImplBase
      implements io.grpc.BindableService, AsyncService {

    @java.lang.Override public final io.grpc.ServerServiceDefinition bindService() {
      return RulesServiceGrpc.bindService(this);
    }
  }

  /**
   * A stub to allow clients to do asynchronous rpc calls to service RulesService.
   * <pre>
   * Manages rules. Changes take effect on every worker within a second.
   * </pre>
   */
  public static final class RulesServiceStub
      extends io.grpc.stub.AbstractAsyncStub<RulesServiceStub> {
    private RulesServiceStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected RulesServiceStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new RulesServiceStub(channel, callOptions);
    }

    /**
     * <pre>
     * Lists the current version of every rule.
     * </pre>
     */
    public void listRules(io.sentinelstream.v1.ListRulesRequest request,
        io.grpc.stub.StreamObserver<io.sentinelstream.v1.ListRulesResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getListRulesMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Returns one rule, at its current or at a given version.
     * </pre>
     */
    public void getRule(io.sentinelstream.v1.GetRuleRequest request,
        io.grpc.stub.StreamObserver<io.sentinelstream.v1.GetRuleResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getGetRuleMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Creates a rule or adds a new version of it. INVALID_ARGUMENT names the position of a
     * syntax or type error in the expression; ABORTED when expected_version is stale.
     * </pre>
     */
    public void putRule(io.sentinelstream.v1.PutRuleRequest request,
        io.grpc.stub.StreamObserver<io.sentinelstream.v1.PutRuleResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getPutRuleMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Deletes a rule (a new version marked deleted; history is kept).
     * </pre>
     */
    public void deleteRule(io.sentinelstream.v1.DeleteRuleRequest request,
        io.grpc.stub.StreamObserver<io.sentinelstream.v1.DeleteRuleResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getDeleteRuleMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Evaluates a stored or a draft rule against one transaction without recording anything.
     * </pre>
     */
    public void testRule(io.sentinelstream.v1.TestRuleRequest request,
        io.grpc.stub.StreamObserver<io.sentinelstream.v1.TestRuleResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getTestRuleMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Lists every version of a rule, newest first.
     * </pre>
     */
    public void listRuleVersions(io.sentinelstream.v1.ListRuleVersionsRequest request,
        io.grpc.stub.StreamObserver<io.sentinelstream.v1.ListRuleVersionsResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getListRuleVersionsMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Makes an earlier version current again, as a new version.
     * </pre>
     */
    public void rollbackRule(io.sentinelstream.v1.RollbackRuleRequest request,
        io.grpc.stub.StreamObserver<io.sentinelstream.v1.RollbackRuleResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getRollbackRuleMethod(), getCallOptions()), request, responseObserver);
    }
  }

  /**
   * A stub to allow clients to do synchronous rpc calls to service RulesService.
   * <pre>
   * Manages rules. Changes take effect on every worker within a second.
   * </pre>
   */
  public static final class RulesServiceBlockingV2Stub
      extends io.grpc.stub.AbstractBlockingStub<RulesServiceBlockingV2Stub> {
    private RulesServiceBlockingV2Stub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected RulesServiceBlockingV2Stub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new RulesServiceBlockingV2Stub(channel, callOptions);
    }

    /**
     * <pre>
     * Lists the current version of every rule.
     * </pre>
     */
    public io.sentinelstream.v1.ListRulesResponse listRules(io.sentinelstream.v1.ListRulesRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getListRulesMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Returns one rule, at its current or at a given version.
     * </pre>
     */
    public io.sentinelstream.v1.GetRuleResponse getRule(io.sentinelstream.v1.GetRuleRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getGetRuleMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Creates a rule or adds a new version of it. INVALID_ARGUMENT names the position of a
     * syntax or type error in the expression; ABORTED when expected_version is stale.
     * </pre>
     */
    public io.sentinelstream.v1.PutRuleResponse putRule(io.sentinelstream.v1.PutRuleRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getPutRuleMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Deletes a rule (a new version marked deleted; history is kept).
     * </pre>
     */
    public io.sentinelstream.v1.DeleteRuleResponse deleteRule(io.sentinelstream.v1.DeleteRuleRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getDeleteRuleMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Evaluates a stored or a draft rule against one transaction without recording anything.
     * </pre>
     */
    public io.sentinelstream.v1.TestRuleResponse testRule(io.sentinelstream.v1.TestRuleRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getTestRuleMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Lists every version of a rule, newest first.
     * </pre>
     */
    public io.sentinelstream.v1.ListRuleVersionsResponse listRuleVersions(io.sentinelstream.v1.ListRuleVersionsRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getListRuleVersionsMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Makes an earlier version current again, as a new version.
     * </pre>
     */
    public io.sentinelstream.v1.RollbackRuleResponse rollbackRule(io.sentinelstream.v1.RollbackRuleRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getRollbackRuleMethod(), getCallOptions(), request);
    }
  }

  /**
   * A stub to allow clients to do limited synchronous rpc calls to service RulesService.
   * <pre>
   * Manages rules. Changes take effect on every worker within a second.
   * </pre>
   */
  public static final class RulesServiceBlockingStub
      extends io.grpc.stub.AbstractBlockingStub<RulesServiceBlockingStub> {
    private RulesServiceBlockingStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected RulesServiceBlockingStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new RulesServiceBlockingStub(channel, callOptions);
    }

    /**
     * <pre>
     * Lists the current version of every rule.
     * </pre>
     */
    public io.sentinelstream.v1.ListRulesResponse listRules(io.sentinelstream.v1.ListRulesRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getListRulesMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Returns one rule, at its current or at a given version.
     * </pre>
     */
    public io.sentinelstream.v1.GetRuleResponse getRule(io.sentinelstream.v1.GetRuleRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getGetRuleMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Creates a rule or adds a new version of it. INVALID_ARGUMENT names the position of a
     * syntax or type error in the expression; ABORTED when expected_version is stale.
     * </pre>
     */
    public io.sentinelstream.v1.PutRuleResponse putRule(io.sentinelstream.v1.PutRuleRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getPutRuleMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Deletes a rule (a new version marked deleted; history is kept).
     * </pre>
     */
    public io.sentinelstream.v1.DeleteRuleResponse deleteRule(io.sentinelstream.v1.DeleteRuleRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getDeleteRuleMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Evaluates a stored or a draft rule against one transaction without recording anything.
     * </pre>
     */
    public io.sentinelstream.v1.TestRuleResponse testRule(io.sentinelstream.v1.TestRuleRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getTestRuleMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Lists every version of a rule, newest first.
     * </pre>
     */
    public io.sentinelstream.v1.ListRuleVersionsResponse listRuleVersions(io.sentinelstream.v1.ListRuleVersionsRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getListRuleVersionsMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Makes an earlier version current again, as a new version.
     * </pre>
     */
    public io.sentinelstream.v1.RollbackRuleResponse rollbackRule(io.sentinelstream.v1.RollbackRuleRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getRollbackRuleMethod(), getCallOptions(), request);
    }
  }

  /**
   * A stub to allow clients to do ListenableFuture-style rpc calls to service RulesService.
   * <pre>
   * Manages rules. Changes take effect on every worker within a second.
   * </pre>
   */
  public static final class RulesServiceFutureStub
      extends io.grpc.stub.AbstractFutureStub<RulesServiceFutureStub> {
    private RulesServiceFutureStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected RulesServiceFutureStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new RulesServiceFutureStub(channel, callOptions);
    }

    /**
     * <pre>
     * Lists the current version of every rule.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<io.sentinelstream.v1.ListRulesResponse> listRules(
        io.sentinelstream.v1.ListRulesRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getListRulesMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Returns one rule, at its current or at a given version.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<io.sentinelstream.v1.GetRuleResponse> getRule(
        io.sentinelstream.v1.GetRuleRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getGetRuleMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Creates a rule or adds a new version of it. INVALID_ARGUMENT names the position of a
     * syntax or type error in the expression; ABORTED when expected_version is stale.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<io.sentinelstream.v1.PutRuleResponse> putRule(
        io.sentinelstream.v1.PutRuleRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getPutRuleMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Deletes a rule (a new version marked deleted; history is kept).
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<io.sentinelstream.v1.DeleteRuleResponse> deleteRule(
        io.sentinelstream.v1.DeleteRuleRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getDeleteRuleMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Evaluates a stored or a draft rule against one transaction without recording anything.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<io.sentinelstream.v1.TestRuleResponse> testRule(
        io.sentinelstream.v1.TestRuleRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getTestRuleMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Lists every version of a rule, newest first.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<io.sentinelstream.v1.ListRuleVersionsResponse> listRuleVersions(
        io.sentinelstream.v1.ListRuleVersionsRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getListRuleVersionsMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Makes an earlier version current again, as a new version.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<io.sentinelstream.v1.RollbackRuleResponse> rollbackRule(
        io.sentinelstream.v1.RollbackRuleRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getRollbackRuleMethod(), getCallOptions()), request);
    }
  }

  private static final int METHODID_LIST_RULES = 0;
  private static final int METHODID_GET_RULE = 1;
  private static final int METHODID_PUT_RULE = 2;
  private static final int METHODID_DELETE_RULE = 3;
  private static final int METHODID_TEST_RULE = 4;
  private static final int METHODID_LIST_RULE_VERSIONS = 5;
  private static final int METHODID_ROLLBACK_RULE = 6;

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
        case METHODID_LIST_RULES:
          serviceImpl.listRules((io.sentinelstream.v1.ListRulesRequest) request,
              (io.grpc.stub.StreamObserver<io.sentinelstream.v1.ListRulesResponse>) responseObserver);
          break;
        case METHODID_GET_RULE:
          serviceImpl.getRule((io.sentinelstream.v1.GetRuleRequest) request,
              (io.grpc.stub.StreamObserver<io.sentinelstream.v1.GetRuleResponse>) responseObserver);
          break;
        case METHODID_PUT_RULE:
          serviceImpl.putRule((io.sentinelstream.v1.PutRuleRequest) request,
              (io.grpc.stub.StreamObserver<io.sentinelstream.v1.PutRuleResponse>) responseObserver);
          break;
        case METHODID_DELETE_RULE:
          serviceImpl.deleteRule((io.sentinelstream.v1.DeleteRuleRequest) request,
              (io.grpc.stub.StreamObserver<io.sentinelstream.v1.DeleteRuleResponse>) responseObserver);
          break;
        case METHODID_TEST_RULE:
          serviceImpl.testRule((io.sentinelstream.v1.TestRuleRequest) request,
              (io.grpc.stub.StreamObserver<io.sentinelstream.v1.TestRuleResponse>) responseObserver);
          break;
        case METHODID_LIST_RULE_VERSIONS:
          serviceImpl.listRuleVersions((io.sentinelstream.v1.ListRuleVersionsRequest) request,
              (io.grpc.stub.StreamObserver<io.sentinelstream.v1.ListRuleVersionsResponse>) responseObserver);
          break;
        case METHODID_ROLLBACK_RULE:
          serviceImpl.rollbackRule((io.sentinelstream.v1.RollbackRuleRequest) request,
              (io.grpc.stub.StreamObserver<io.sentinelstream.v1.RollbackRuleResponse>) responseObserver);
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
          getListRulesMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              io.sentinelstream.v1.ListRulesRequest,
              io.sentinelstream.v1.ListRulesResponse>(
                service, METHODID_LIST_RULES)))
        .addMethod(
          getGetRuleMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              io.sentinelstream.v1.GetRuleRequest,
              io.sentinelstream.v1.GetRuleResponse>(
                service, METHODID_GET_RULE)))
        .addMethod(
          getPutRuleMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              io.sentinelstream.v1.PutRuleRequest,
              io.sentinelstream.v1.PutRuleResponse>(
                service, METHODID_PUT_RULE)))
        .addMethod(
          getDeleteRuleMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              io.sentinelstream.v1.DeleteRuleRequest,
              io.sentinelstream.v1.DeleteRuleResponse>(
                service, METHODID_DELETE_RULE)))
        .addMethod(
          getTestRuleMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              io.sentinelstream.v1.TestRuleRequest,
              io.sentinelstream.v1.TestRuleResponse>(
                service, METHODID_TEST_RULE)))
        .addMethod(
          getListRuleVersionsMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              io.sentinelstream.v1.ListRuleVersionsRequest,
              io.sentinelstream.v1.ListRuleVersionsResponse>(
                service, METHODID_LIST_RULE_VERSIONS)))
        .addMethod(
          getRollbackRuleMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              io.sentinelstream.v1.RollbackRuleRequest,
              io.sentinelstream.v1.RollbackRuleResponse>(
                service, METHODID_ROLLBACK_RULE)))
        .build();
  }

  private static abstract class RulesServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoFileDescriptorSupplier, io.grpc.protobuf.ProtoServiceDescriptorSupplier {
    RulesServiceBaseDescriptorSupplier() {}

    @java.lang.Override
    public com.google.protobuf.Descriptors.FileDescriptor getFileDescriptor() {
      return io.sentinelstream.v1.Rules.getDescriptor();
    }

    @java.lang.Override
    public com.google.protobuf.Descriptors.ServiceDescriptor getServiceDescriptor() {
      return getFileDescriptor().findServiceByName("RulesService");
    }
  }

  private static final class RulesServiceFileDescriptorSupplier
      extends RulesServiceBaseDescriptorSupplier {
    RulesServiceFileDescriptorSupplier() {}
  }

  private static final class RulesServiceMethodDescriptorSupplier
      extends RulesServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoMethodDescriptorSupplier {
    private final java.lang.String methodName;

    RulesServiceMethodDescriptorSupplier(java.lang.String methodName) {
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
      synchronized (RulesServiceGrpc.class) {
        result = serviceDescriptor;
        if (result == null) {
          serviceDescriptor = result = io.grpc.ServiceDescriptor.newBuilder(SERVICE_NAME)
              .setSchemaDescriptor(new RulesServiceFileDescriptorSupplier())
              .addMethod(getListRulesMethod())
              .addMethod(getGetRuleMethod())
              .addMethod(getPutRuleMethod())
              .addMethod(getDeleteRuleMethod())
              .addMethod(getTestRuleMethod())
              .addMethod(getListRuleVersionsMethod())
              .addMethod(getRollbackRuleMethod())
              .build();
        }
      }
    }
    return result;
  }
}
