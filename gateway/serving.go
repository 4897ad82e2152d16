package main

import (
	"context"
	"crypto/tls"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// incomingHeader decides which HTTP request headers become gRPC metadata. Authorization is forwarded
// by grpc-gateway itself (as "authorization", what the server authenticates); x-request-id is passed
// on under its own name so that a caller's id reaches the server's logs; other headers follow
// grpc-gateway's default (Grpc-Metadata-* prefixed ones, and the standard ones as grpcgateway-*).
func incomingHeader(key string) (string, bool) {
	switch strings.ToLower(key) {
	case "x-request-id":
		return "x-request-id", true
	case "authorization":
		return "", false // already forwarded; not a second time as grpcgateway-authorization
	}
	return runtime.DefaultHeaderMatcher(key)
}

// errorWithRetryAfter is grpc-gateway's error handler (gRPC code -> HTTP status, the google.rpc.Status
// as the JSON body, details included) plus a Retry-After header when the status carries a RetryInfo:
// what the rate limiter and the overload guard send with RESOURCE_EXHAUSTED and UNAVAILABLE.
func errorWithRetryAfter(ctx context.Context, mux *runtime.ServeMux, marshaler runtime.Marshaler,
	w http.ResponseWriter, r *http.Request, err error) {
	if s, ok := status.FromError(err); ok && s.Code() != codes.OK {
		for _, detail := range s.Details() {
			if info, ok := detail.(*errdetails.RetryInfo); ok && info.GetRetryDelay() != nil {
				seconds := math.Ceil(info.GetRetryDelay().AsDuration().Seconds())
				w.Header().Set("Retry-After", strconv.Itoa(int(math.Max(1, seconds))))
			}
		}
	}
	runtime.DefaultHTTPErrorHandler(ctx, mux, marshaler, w, r, err)
}

// servingTLS serves the certificate and key files, re-read when either changes (as the gRPC port does);
// a changed pair that does not load keeps the previous one.
func servingTLS(certFile, keyFile string) *tls.Config {
	reloader := &certificateReloader{certFile: certFile, keyFile: keyFile}
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: reloader.get}
}

type certificateReloader struct {
	certFile, keyFile string
	mu                sync.Mutex
	signature         string
	current           *tls.Certificate
}

func (c *certificateReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	signature := fileSignature(c.certFile) + "|" + fileSignature(c.keyFile)
	if c.current == nil || signature != c.signature {
		pair, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
		if err != nil {
			if c.current == nil {
				return nil, err
			}
			logEvent("rest_tls_reload_refused", map[string]any{"error": err.Error()})
		} else {
			c.current = &pair
		}
		c.signature = signature
	}
	return c.current, nil
}

func fileSignature(path string) string {
	info, err := os.Stat(path)
	if err != nil {
		return "missing"
	}
	return strconv.FormatInt(info.Size(), 10) + "@" + info.ModTime().Format(time.RFC3339Nano)
}
