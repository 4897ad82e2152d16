package io.sentinelstream.v1;

import static io.grpc.MethodDescriptor.generateFullMethodName;

/**
 * <pre>
 * Manages who hears about decisions. Every change is kept in the subscription history.
 * </pre>
 */
@io.grpc.stub.annotations.GrpcGenerated
public final class EventsServiceGrpc {

  private EventsServiceGrpc() {}

  public static final java.lang.String SERVICE_NAME = "sentinel.v1.EventsService";

  // Static method descriptors that strictly reflect the proto.
  private static volatile io.grpc.MethodDescriptor<io.sentinelstream.v1.CreateSubscriptionRequest,
      io.sentinelstream.v1.CreateSubscriptionResponse> getCreateSubscriptionMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "CreateSubscription",
      requestType = io.sentinelstream.v1.CreateSubscriptionRequest.class,
      responseType = io.sentinelstream.v1.CreateSubscriptionResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<io.sentinelstream.v1.CreateSubscriptionRequest,
      io.sentinelstream.v1.CreateSubscriptionResponse> getCreateSubscriptionMethod() {
    io.grpc.MethodDescriptor<io.sentinelstream.v1.CreateSubscriptionRequest, io.sentinelstream.v1.CreateSubscriptionResponse> getCreateSubscriptionMethod;
    if ((getCreateSubscriptionMethod = EventsServiceGrpc.getCreateSubscriptionMethod) == null) {
      synchronized (EventsServiceGrpc.class) {
        if ((getCreateSubscriptionMethod = EventsServiceGrpc.getCreateSubscriptionMethod) == null) {
          EventsServiceGrpc.getCreateSubscriptionMethod = getCreateSubscriptionMethod =
              io.grpc.MethodDescriptor.<io.sentinelstream.v1.CreateSubscriptionRequest, io.sentinelstream.v1.CreateSubscriptionResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "CreateSubscription"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.sentinelstream.v1.CreateSubscriptionRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.sentinelstream.v1.CreateSubscriptionResponse.getDefaultInstance()))
              .setSchemaDescriptor(new EventsServiceMethodDescriptorSupplier("CreateSubscription"))
              .build();
        }
      }
    }
    return getCreateSubscriptionMethod;
  }

  private static volatile io.grpc.MethodDescriptor<io.sentinelstream.v1.ListSubscriptionsRequest,
      io.sentinelstream.v1.ListSubscriptionsResponse> getListSubscriptionsMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "ListSubscriptions",
      requestType = io.sentinelstream.v1.ListSubscriptionsRequest.class,
      responseType = io.sentinelstream.v1.ListSubscriptionsResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<io.sentinelstream.v1.ListSubscriptionsRequest,
      io.sentinelstream.v1.ListSubscriptionsResponse> getListSubscriptionsMethod() {
    io.grpc.MethodDescriptor<io.sentinelstream.v1.ListSubscriptionsRequest, io.sentinelstream.v1.ListSubscriptionsResponse> getListSubscriptionsMethod;
    if ((getListSubscriptionsMethod = EventsServiceGrpc.getListSubscriptionsMethod) == null) {
      synchronized (EventsServiceGrpc.class) {
        if ((getListSubscriptionsMethod = EventsServiceGrpc.getListSubscriptionsMethod) == null) {
          EventsServiceGrpc.getListSubscriptionsMethod = getListSubscriptionsMethod =
              io.grpc.MethodDescriptor.<io.sentinelstream.v1.ListSubscriptionsRequest, io.sentinelstream.v1.ListSubscriptionsResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "ListSubscriptions"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.sentinelstream.v1.ListSubscriptionsRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.sentinelstream.v1.ListSubscriptionsResponse.getDefaultInstance()))
              .setSchemaDescriptor(new EventsServiceMethodDescriptorSupplier("ListSubscriptions"))
              .build();
        }
      }
    }
    return getListSubscriptionsMethod;
  }

  private static volatile io.grpc.MethodDescriptor<io.sentinelstream.v1.DisableSubscriptionRequest,
      io.sentinelstream.v1.DisableSubscriptionResponse> getDisableSubscriptionMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "DisableSubscription",
      requestType = io.sentinelstream.v1.DisableSubscriptionRequest.class,
      responseType = io.sentinelstream.v1.DisableSubscriptionResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<io.sentinelstream.v1.DisableSubscriptionRequest,
      io.sentinelstream.v1.DisableSubscriptionResponse> getDisableSubscriptionMethod() {
    io.grpc.MethodDescriptor<io.sentinelstream.v1.DisableSubscriptionRequest, io.sentinelstream.v1.DisableSubscriptionResponse> getDisableSubscriptionMethod;
    if ((getDisableSubscriptionMethod = EventsServiceGrpc.getDisableSubscriptionMethod) == null) {
      synchronized (EventsServiceGrpc.class) {
        if ((getDisableSubscriptionMethod = EventsServiceGrpc.getDisableSubscriptionMethod) == null) {
          EventsServiceGrpc.getDisableSubscriptionMethod = getDisableSubscriptionMethod =
              io.grpc.MethodDescriptor.<io.sentinelstream.v1.DisableSubscriptionRequest, io.sentinelstream.v1.DisableSubscriptionResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "DisableSubscription"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.sentinelstream.v1.DisableSubscriptionRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.sentinelstream.v1.DisableSubscriptionResponse.getDefaultInstance()))
              .setSchemaDescriptor(new EventsServiceMethodDescriptorSupplier("DisableSubscription"))
              .build();
        }
      }
    }
    return getDisableSubscriptionMethod;
  }

  private static volatile io.grpc.MethodDescriptor<io.sentinelstream.v1.RotateSubscriptionSecretRequest,
      io.sentinelstream.v1.RotateSubscriptionSecretResponse> getRotateSubscriptionSecretMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "RotateSubscriptionSecret",
      requestType = io.sentinelstream.v1.RotateSubscriptionSecretRequest.class,
      responseType = io.sentinelstream.v1.RotateSubscriptionSecretResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<io.sentinelstream.v1.RotateSubscriptionSecretRequest,
      io.sentinelstream.v1.RotateSubscriptionSecretResponse> getRotateSubscriptionSecretMethod() {
    io.grpc.MethodDescriptor<io.sentinelstream.v1.RotateSubscriptionSecretRequest, io.sentinelstream.v1.RotateSubscriptionSecretResponse> getRotateSubscriptionSecretMethod;
    if ((getRotateSubscriptionSecretMethod = EventsServiceGrpc.getRotateSubscriptionSecretMethod) == null) {
      synchronized (EventsServiceGrpc.class) {
        if ((getRotateSubscriptionSecretMethod = EventsServiceGrpc.getRotateSubscriptionSecretMethod) == null) {
          EventsServiceGrpc.getRotateSubscriptionSecretMethod = getRotateSubscriptionSecretMethod =
              io.grpc.MethodDescriptor.<io.sentinelstream.v1.RotateSubscriptionSecretRequest, io.sentinelstream.v1.RotateSubscriptionSecretResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "RotateSubscriptionSecret"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.sentinelstream.v1.RotateSubscriptionSecretRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.sentinelstream.v1.RotateSubscriptionSecretResponse.getDefaultInstance()))
              .setSchemaDescriptor(new EventsServiceMethodDescriptorSupplier("RotateSubscriptionSecret"))
              .build();
        }
      }
    }
    return getRotateSubscriptionSecretMethod;
  }

  private static volatile io.grpc.MethodDescriptor<io.sentinelstream.v1.ReplayEventsRequest,
      io.sentinelstream.v1.ReplayEventsResponse> getReplayEventsMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "ReplayEvents",
      requestType = io.sentinelstream.v1.ReplayEventsRequest.class,
      responseType = io.sentinelstream.v1.ReplayEventsResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<io.sentinelstream.v1.ReplayEventsRequest,
      io.sentinelstream.v1.ReplayEventsResponse> getReplayEventsMethod() {
    io.grpc.MethodDescriptor<io.sentinelstream.v1.ReplayEventsRequest, io.sentinelstream.v1.ReplayEventsResponse> getReplayEventsMethod;
    if ((getReplayEventsMethod = EventsServiceGrpc.getReplayEventsMethod) == null) {
      synchronized (EventsServiceGrpc.class) {
        if ((getReplayEventsMethod = EventsServiceGrpc.getReplayEventsMethod) == null) {
          EventsServiceGrpc.getReplayEventsMethod = getReplayEventsMethod =
              io.grpc.MethodDescriptor.<io.sentinelstream.v1.ReplayEventsRequest, io.sentinelstream.v1.ReplayEventsResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "ReplayEvents"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.sentinelstream.v1.ReplayEventsRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  io.sentinelstream.v1.ReplayEventsResponse.getDefaultInstance()))
              .setSchemaDescriptor(new EventsServiceMethodDescriptorSupplier("ReplayEvents"))
              .build();
        }
      }
    }
    return getReplayEventsMethod;
  }

  /**
   * Creates a new async stub that supports all call types for the service
   */
  public static EventsServiceStub newStub(io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<EventsServiceStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<EventsServiceStub>() {
        @java.lang.Override
        public EventsServiceStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new EventsServiceStub(channel, callOptions);
        }
      };
    return EventsServiceStub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports all types of calls on the service
   */
  public static EventsServiceBlockingV2Stub newBlockingV2Stub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<EventsServiceBlockingV2Stub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<EventsServiceBlockingV2Stub>() {
        @java.lang.Override
        public EventsServiceBlockingV2Stub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new EventsServiceBlockingV2Stub(channel, callOptions);
        }
      };
    return EventsServiceBlockingV2Stub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports unary and streaming output calls on the service
   */
  public static EventsServiceBlockingStub newBlockingStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<EventsServiceBlockingStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<EventsServiceBlockingStub>() {
        @java.lang.Override
        public EventsServiceBlockingStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new EventsServiceBlockingStub(channel, callOptions);
        }
      };
    return EventsServiceBlockingStub.newStub(factory, channel);
  }

  /**
   * Creates a new ListenableFuture-style stub that supports unary calls on the service
   */
  public static EventsServiceFutureStub newFutureStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<EventsServiceFutureStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<EventsServiceFutureStub>() {
        @java.lang.Override
        public EventsServiceFutureStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new EventsServiceFutureStub(channel, callOptions);
        }
      };
    return EventsServiceFutureStub.newStub(factory, channel);
  }

  /**
   * <pre>
   * Manages who hears about decisions. Every change is kept in the subscription history.
   * </pre>
   */
  public interface AsyncService {

    /**
     * <pre>
     * Subscribes an HTTPS endpoint; the response carries its signing secret, the only time it is shown.
     * INVALID_ARGUMENT for a URL that is not https:// or an unknown filter value.
     * </pre>
     */
    default void createSubscription(io.sentinelstream.v1.CreateSubscriptionRequest request,
        io.grpc.stub.StreamObserver<io.sentinelstream.v1.CreateSubscriptionResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getCreateSubscriptionMethod(), responseObserver);
    }

    /**
     * <pre>
     * Lists the subscriptions (and the broker destination), without secrets.
     * </pre>
     */
    default void listSubscriptions(io.sentinelstream.v1.ListSubscriptionsRequest request,
        io.grpc.stub.StreamObserver<io.sentinelstream.v1.ListSubscriptionsResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getListSubscriptionsMethod(), responseObserver);
    }

    /**
     * <pre>
     * Stops deliveries to a subscription; NOT_FOUND when there is none with that id.
     * </pre>
     */
    default void disableSubscription(io.sentinelstream.v1.DisableSubscriptionRequest request,
        io.grpc.stub.StreamObserver<io.sentinelstream.v1.DisableSubscriptionResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getDisableSubscriptionMethod(), responseObserver);
    }

    /**
     * <pre>
     * Replaces a webhook's signing secret; the previous one keeps signing for the grace period
     * (events_secret_grace_s), so receivers can switch without losing events.
     * </pre>
     */
    default void rotateSubscriptionSecret(io.sentinelstream.v1.RotateSubscriptionSecretRequest request,
        io.grpc.stub.StreamObserver<io.sentinelstream.v1.RotateSubscriptionSecretResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getRotateSubscriptionSecretMethod(), responseObserver);
    }

    /**
     * <pre>
     * Delivers recorded events again (dead ones included), under their original event ids.
     * </pre>
     */
    default void replayEvents(io.sentinelstream.v1.ReplayEventsRequest request,
        io.grpc.stub.StreamObserver<io.sentinelstream.v1.ReplayEventsResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getReplayEventsMethod(), responseObserver);
    }
  }

  /**
   * Base class for the server implementation of the service EventsService.
   * <pre>
   * Manages who hears about decisions. Every change is kept in the subscription history.
   * </pre>
   */
  public static abstract class EventsServiceImplBase
      implements io.grpc.BindableService, AsyncService {

    @java.lang.Override public final io.grpc.ServerServiceDefinition bindService() {
      return EventsServiceGrpc.bindService(this);
    }
  }

  /**
   * A stub to allow clients to do asynchronous rpc calls to service EventsService.
   * <pre>
   * Manages who hears about decisions. Every change is kept in the subscription history.
   * </pre>
   */
  public static final class EventsServiceStub
      extends io.grpc.stub.AbstractAsyncStub<EventsServiceStub> {
    private EventsServiceStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected EventsServiceStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new EventsServiceStub(channel, callOptions);
    }

    /**
     * <pre>
     * Subscribes an HTTPS endpoint; the response carries its signing secret, the only time it is shown.
     * INVALID_ARGUMENT for a URL that is not https:// or an unknown filter value.
     * </pre>
     */
    public void createSubscription(io.sentinelstream.v1.CreateSubscriptionRequest request,
        io.grpc.stub.StreamObserver<io.sentinelstream.v1.CreateSubscriptionResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getCreateSubscriptionMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Lists the subscriptions (and the broker destination), without secrets.
     * </pre>
     */
    public void listSubscriptions(io.sentinelstream.v1.ListSubscriptionsRequest request,
        io.grpc.stub.StreamObserver<io.sentinelstream.v1.ListSubscriptionsResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getListSubscriptionsMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Stops deliveries to a subscription; NOT_FOUND when there is none with that id.
     * </pre>
     */
    public void disableSubscription(io.sentinelstream.v1.DisableSubscriptionRequest request,
        io.grpc.stub.StreamObserver<io.sentinelstream.v1.DisableSubscriptionResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getDisableSubscriptionMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Replaces a webhook's signing secret; the previous one keeps signing for the grace period
     * (events_secret_grace_s), so receivers can switch without losing events.
     * </pre>
     */
    public void rotateSubscriptionSecret(io.sentinelstream.v1.RotateSubscriptionSecretRequest request,
        io.grpc.stub.StreamObserver<io.sentinelstream.v1.RotateSubscriptionSecretResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getRotateSubscriptionSecretMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Delivers recorded events again (dead ones included), under their original event ids.
     * </pre>
     */
    public void replayEvents(io.sentinelstream.v1.ReplayEventsRequest request,
        io.grpc.stub.StreamObserver<io.sentinelstream.v1.ReplayEventsResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getReplayEventsMethod(), getCallOptions()), request, responseObserver);
    }
  }

  /**
   * A stub to allow clients to do synchronous rpc calls to service EventsService.
   * <pre>
   * Manages who hears about decisions. Every change is kept in the subscription history.
   * </pre>
   */
  public static final class EventsServiceBlockingV2Stub
      extends io.grpc.stub.AbstractBlockingStub<EventsServiceBlockingV2Stub> {
    private EventsServiceBlockingV2Stub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected EventsServiceBlockingV2Stub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new EventsServiceBlockingV2Stub(channel, callOptions);
    }

    /**
     * <pre>
     * Subscribes an HTTPS endpoint; the response carries its signing secret, the only time it is shown.
     * INVALID_ARGUMENT for a URL that is not https:// or an unknown filter value.
     * </pre>
     */
    public io.sentinelstream.v1.CreateSubscriptionResponse createSubscription(io.sentinelstream.v1.CreateSubscriptionRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getCreateSubscriptionMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Lists the subscriptions (and the broker destination), without secrets.
     * </pre>
     */
    public io.sentinelstream.v1.ListSubscriptionsResponse listSubscriptions(io.sentinelstream.v1.ListSubscriptionsRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getListSubscriptionsMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Stops deliveries to a subscription; NOT_FOUND when there is none with that id.
     * </pre>
     */
    public io.sentinelstream.v1.DisableSubscriptionResponse disableSubscription(io.sentinelstream.v1.DisableSubscriptionRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getDisableSubscriptionMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Replaces a webhook's signing secret; the previous one keeps signing for the grace period
     * (events_secret_grace_s), so receivers can switch without losing events.
     * </pre>
     */
    public io.sentinelstream.v1.RotateSubscriptionSecretResponse rotateSubscriptionSecret(io.sentinelstream.v1.RotateSubscriptionSecretRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getRotateSubscriptionSecretMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Delivers recorded events again (dead ones included), under their original event ids.
     * </pre>
     */
    public io.sentinelstream.v1.ReplayEventsResponse replayEvents(io.sentinelstream.v1.ReplayEventsRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getReplayEventsMethod(), getCallOptions(), request);
    }
  }

  /**
   * A stub to allow clients to do limited synchronous rpc calls to service EventsService.
   * <pre>
   * Manages who hears about decisions. Every change is kept in the subscription history.
   * </pre>
   */
  public static final class EventsServiceBlockingStub
      extends io.grpc.stub.AbstractBlockingStub<EventsServiceBlockingStub> {
    private EventsServiceBlockingStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected EventsServiceBlockingStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new EventsServiceBlockingStub(channel, callOptions);
    }

    /**
     * <pre>
     * Subscribes an HTTPS endpoint; the response carries its signing secret, the only time it is shown.
     * INVALID_ARGUMENT for a URL that is not https:// or an unknown filter value.
     * </pre>
     */
    public io.sentinelstream.v1.CreateSubscriptionResponse createSubscription(io.sentinelstream.v1.CreateSubscriptionRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getCreateSubscriptionMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Lists the subscriptions (and the broker destination), without secrets.
     * </pre>
     */
    public io.sentinelstream.v1.ListSubscriptionsResponse listSubscriptions(io.sentinelstream.v1.ListSubscriptionsRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getListSubscriptionsMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Stops deliveries to a subscription; NOT_FOUND when there is none with that id.
     * </pre>
     */
    public io.sentinelstream.v1.DisableSubscriptionResponse disableSubscription(io.sentinelstream.v1.DisableSubscriptionRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getDisableSubscriptionMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Replaces a webhook's signing secret; the previous one keeps signing for the grace period
     * (events_secret_grace_s), so receivers can switch without losing events.
     * </pre>
     */
    public io.sentinelstream.v1.RotateSubscriptionSecretResponse rotateSubscriptionSecret(io.sentinelstream.v1.RotateSubscriptionSecretRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getRotateSubscriptionSecretMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Delivers recorded events again (dead ones included), under their original event ids.
     * </pre>
     */
    public io.sentinelstream.v1.ReplayEventsResponse replayEvents(io.sentinelstream.v1.ReplayEventsRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getReplayEventsMethod(), getCallOptions(), request);
    }
  }

  /**
   * A stub to allow clients to do ListenableFuture-style rpc calls to service EventsService.
   * <pre>
   * Manages who hears about decisions. Every change is kept in the subscription history.
   * </pre>
   */
  public static final class EventsServiceFutureStub
      extends io.grpc.stub.AbstractFutureStub<EventsServiceFutureStub> {
    private EventsServiceFutureStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected EventsServiceFutureStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new EventsServiceFutureStub(channel, callOptions);
    }

    /**
     * <pre>
     * Subscribes an HTTPS endpoint; the response carries its signing secret, the only time it is shown.
     * INVALID_ARGUMENT for a URL that is not https:// or an unknown filter value.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<io.sentinelstream.v1.CreateSubscriptionResponse> createSubscription(
        io.sentinelstream.v1.CreateSubscriptionRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getCreateSubscriptionMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Lists the subscriptions (and the broker destination), without secrets.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<io.sentinelstream.v1.ListSubscriptionsResponse> listSubscriptions(
        io.sentinelstream.v1.ListSubscriptionsRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getListSubscriptionsMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Stops deliveries to a subscription; NOT_FOUND when there is none with that id.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<io.sentinelstream.v1.DisableSubscriptionResponse> disableSubscription(
        io.sentinelstream.v1.DisableSubscriptionRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getDisableSubscriptionMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Replaces a webhook's signing secret; the previous one keeps signing for the grace period
     * (events_secret_grace_s), so receivers can switch without losing events.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<io.sentinelstream.v1.RotateSubscriptionSecretResponse> rotateSubscriptionSecret(
        io.sentinelstream.v1.RotateSubscriptionSecretRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getRotateSubscriptionSecretMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Delivers recorded events again (dead ones included), under their original event ids.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<io.sentinelstream.v1.ReplayEventsResponse> replayEvents(
        io.sentinelstream.v1.ReplayEventsRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getReplayEventsMethod(), getCallOptions()), request);
    }
  }

  private static final int METHODID_CREATE_SUBSCRIPTION = 0;
  private static final int METHODID_LIST_SUBSCRIPTIONS = 1;
  private static final int METHODID_DISABLE_SUBSCRIPTION = 2;
  private static final int METHODID_ROTATE_SUBSCRIPTION_SECRET = 3;
  private static final int METHODID_REPLAY_EVENTS = 4;

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
        case METHODID_CREATE_SUBSCRIPTION:
          serviceImpl.createSubscription((io.sentinelstream.v1.CreateSubscriptionRequest) request,
              (io.grpc.stub.StreamObserver<io.sentinelstream.v1.CreateSubscriptionResponse>) responseObserver);
          break;
        case METHODID_LIST_SUBSCRIPTIONS:
          serviceImpl.listSubscriptions((io.sentinelstream.v1.ListSubscriptionsRequest) request,
              (io.grpc.stub.StreamObserver<io.sentinelstream.v1.ListSubscriptionsResponse>) responseObserver);
          break;
        case METHODID_DISABLE_SUBSCRIPTION:
          serviceImpl.disableSubscription((io.sentinelstream.v1.DisableSubscriptionRequest) request,
              (io.grpc.stub.StreamObserver<io.sentinelstream.v1.DisableSubscriptionResponse>) responseObserver);
          break;
        case METHODID_ROTATE_SUBSCRIPTION_SECRET:
          serviceImpl.rotateSubscriptionSecret((io.sentinelstream.v1.RotateSubscriptionSecretRequest) request,
              (io.grpc.stub.StreamObserver<io.sentinelstream.v1.RotateSubscriptionSecretResponse>) responseObserver);
          break;
        case METHODID_REPLAY_EVENTS:
          serviceImpl.replayEvents((io.sentinelstream.v1.ReplayEventsRequest) request,
              (io.grpc.stub.StreamObserver<io.sentinelstream.v1.ReplayEventsResponse>) responseObserver);
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
          getCreateSubscriptionMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              io.sentinelstream.v1.CreateSubscriptionRequest,
              io.sentinelstream.v1.CreateSubscriptionResponse>(
                service, METHODID_CREATE_SUBSCRIPTION)))
        .addMethod(
          getListSubscriptionsMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              io.sentinelstream.v1.ListSubscriptionsRequest,
              io.sentinelstream.v1.ListSubscriptionsResponse>(
                service, METHODID_LIST_SUBSCRIPTIONS)))
        .addMethod(
          getDisableSubscriptionMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              io.sentinelstream.v1.DisableSubscriptionRequest,
              io.sentinelstream.v1.DisableSubscriptionResponse>(
                service, METHODID_DISABLE_SUBSCRIPTION)))
        .addMethod(
          getRotateSubscriptionSecretMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              io.sentinelstream.v1.RotateSubscriptionSecretRequest,
              io.sentinelstream.v1.RotateSubscriptionSecretResponse>(
                service, METHODID_ROTATE_SUBSCRIPTION_SECRET)))
        .addMethod(
          getReplayEventsMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              io.sentinelstream.v1.ReplayEventsRequest,
              io.sentinelstream.v1.ReplayEventsResponse>(
                service, METHODID_REPLAY_EVENTS)))
        .build();
  }

  private static abstract class EventsServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoFileDescriptorSupplier, io.grpc.protobuf.ProtoServiceDescriptorSupplier {
    EventsServiceBaseDescriptorSupplier() {}

    @java.lang.Override
    public com.google.protobuf.Descriptors.FileDescriptor getFileDescriptor() {
      return io.sentinelstream.v1.Events.getDescriptor();
    }

    @java.lang.Override
    public com.google.protobuf.Descriptors.ServiceDescriptor getServiceDescriptor() {
      return getFileDescriptor().findServiceByName("EventsService");
    }
  }

  private static final class EventsServiceFileDescriptorSupplier
      extends EventsServiceBaseDescriptorSupplier {
    EventsServiceFileDescriptorSupplier() {}
  }

  private static final class EventsServiceMethodDescriptorSupplier
      extends EventsServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoMethodDescriptorSupplier {
    private final java.lang.String methodName;

    EventsServiceMethodDescriptorSupplier(java.lang.String methodName) {
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
      synchronized (EventsServiceGrpc.class) {
        result = serviceDescriptor;
        if (result == null) {
          serviceDescriptor = result = io.grpc.ServiceDescriptor.newBuilder(SERVICE_NAME)
              .setSchemaDescriptor(new EventsServiceFileDescriptorSupplier())
              .addMethod(getCreateSubscriptionMethod())
              .addMethod(getListSubscriptionsMethod())
              .addMethod(getDisableSubscriptionMethod())
              .addMethod(getRotateSubscriptionSecretMethod())
              .addMethod(getReplayEventsMethod())
              .build();
        }
      }
    }
    return result;
  }
}
