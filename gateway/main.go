// Command sentinel-gateway serves SentinelStream's REST/JSON API: every unary method of sentinel.v1
// that carries a google.api.http annotation, translated by grpc-gateway's generated handlers (gen/,
// made by deploy/build-gateway.sh) into a call to the gRPC server. It also serves the OpenAPI document
// generated from the same .proto files at GET /openapi.json, and GET /healthz (the server's gRPC health).
//
// `sentinel serve` (and so `sentinel dev serve`) starts and supervises it when `rest_port` is set; see
// docs/decisions/0018-rest-gateway.md for why it is a separate Go process.
package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/encoding/protojson"

	// The error details the server sends (BadRequest, RetryInfo ...) must be known to render them as JSON.
	_ "google.golang.org/genproto/googleapis/rpc/errdetails"

	sentinelv1 "github.com/sentinelstream/sentinel/gateway/gen/sentinel/v1"
)

//go:embed openapi.json
var openAPIDocument []byte

// OpenAPIPath is where the OpenAPI (Swagger 2.0) document is served.
const OpenAPIPath = "/openapi.json"

type options struct {
	listen              string
	upstream            string
	upstreamConnections int
	upstreamCert        string
	tlsCert             string
	tlsKey              string
	maxBodyBytes        int64
	maxMessageBytes     int
}

func parseOptions() options {
	var o options
	flag.StringVar(&o.listen, "listen", "127.0.0.1:8080", "host:port the REST API is served on")
	flag.StringVar(&o.upstream, "upstream", "127.0.0.1:50051", "host:port of SentinelStream's gRPC server")
	flag.IntVar(&o.upstreamConnections, "upstream-connections", 2,
		"HTTP/2 connections to the gRPC server, used in turn (its workers share the port with SO_REUSEPORT, "+
			"so one connection would reach one worker only)")
	flag.StringVar(&o.upstreamCert, "upstream-tls-cert", "",
		"connect to the gRPC server with TLS and accept exactly the certificate in this PEM file (the server's "+
			"own tls_cert_file, re-read at every handshake); empty: plaintext")
	flag.StringVar(&o.tlsCert, "tls-cert", "", "serve HTTPS with this PEM certificate chain (re-read when it changes)")
	flag.StringVar(&o.tlsKey, "tls-key", "", "the private key of -tls-cert")
	flag.Int64Var(&o.maxBodyBytes, "max-body-bytes", 64<<20, "largest request body accepted (a larger one is refused with 400)")
	flag.IntVar(&o.maxMessageBytes, "max-message-bytes", 16<<20, "largest gRPC response message accepted")
	flag.Parse()
	return o
}

func main() {
	if err := run(parseOptions()); err != nil {
		fmt.Fprintf(os.Stderr, "sentinel-gateway: %v\n", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return errors.New("give -tls-cert and -tls-key together")
	}
	upstream, err := dialUpstream(o.upstream, o.upstreamConnections, o.upstreamCert, o.maxMessageBytes)
	if err != nil {
		return err
	}
	defer upstream.Close()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	gateway := newGatewayMux(upstream)
	if err := sentinelv1.RegisterScoringServiceHandlerClient(ctx, gateway, sentinelv1.NewScoringServiceClient(upstream)); err != nil {
		return err
	}
	if err := sentinelv1.RegisterLedgerServiceHandlerClient(ctx, gateway, sentinelv1.NewLedgerServiceClient(upstream)); err != nil {
		return err
	}
	if err := sentinelv1.RegisterRulesServiceHandlerClient(ctx, gateway, sentinelv1.NewRulesServiceClient(upstream)); err != nil {
		return err
	}
	if err := sentinelv1.RegisterEventsServiceHandlerClient(ctx, gateway, sentinelv1.NewEventsServiceClient(upstream)); err != nil {
		return err
	}

	routes := http.NewServeMux()
	routes.HandleFunc("GET "+OpenAPIPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openAPIDocument)
	})
	routes.Handle("/", http.MaxBytesHandler(gateway, o.maxBodyBytes))

	server := &http.Server{Addr: o.listen, Handler: routes, ReadHeaderTimeout: 10 * time.Second}
	server.Protocols = new(http.Protocols)
	server.Protocols.SetHTTP1(true)
	server.Protocols.SetHTTP2(true)
	server.Protocols.SetUnencryptedHTTP2(o.tlsCert == "") // h2c for HTTP/2 clients on a plaintext port
	if o.tlsCert != "" {
		server.TLSConfig = servingTLS(o.tlsCert, o.tlsKey)
	}
	served := make(chan error, 1)
	go func() {
		if o.tlsCert != "" {
			served <- server.ListenAndServeTLS("", "")
		} else {
			served <- server.ListenAndServe()
		}
	}()
	logEvent("rest_gateway_serving", map[string]any{
		"address": o.listen, "upstream": o.upstream, "tls": o.tlsCert != "", "upstream_tls": o.upstreamCert != "",
		"openapi": OpenAPIPath,
	})
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return server.Shutdown(shutdown) // lets calls in flight finish
}

// newGatewayMux is grpc-gateway's router with the canonical proto3 JSON mapping (lowerCamelCase names,
// default values omitted, unknown fields refused with 400), the server's health at GET /healthz and
// google.rpc.Status error bodies (with a Retry-After header when the status carries a RetryInfo).
func newGatewayMux(upstream *upstreamPool) *runtime.ServeMux {
	marshaler := &runtime.JSONPb{MarshalOptions: protojson.MarshalOptions{}, UnmarshalOptions: protojson.UnmarshalOptions{}}
	return runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, marshaler),
		runtime.WithIncomingHeaderMatcher(incomingHeader),
		runtime.WithUnescapingMode(runtime.UnescapingModeAllCharacters), // an id with "/" comes as %2F
		runtime.WithErrorHandler(errorWithRetryAfter),
		runtime.WithHealthzEndpoint(grpc_health_v1.NewHealthClient(upstream)),
	)
}

// logEvent writes one JSON line to stderr, like the server's JSON logs.
func logEvent(event string, fields map[string]any) {
	fields["event"] = event
	fields["logger"] = "sentinel.gateway"
	fields["timestamp"] = time.Now().UTC().Format(time.RFC3339Nano)
	line, _ := json.Marshal(fields)
	fmt.Fprintln(os.Stderr, string(line))
}
