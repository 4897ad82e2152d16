package sentinel

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Option configures a Client (see New).
type Option func(*settings)

type settings struct {
	tls              bool
	caPEM            []byte
	certPEM          []byte
	keyPEM           []byte
	tlsConfig        *tls.Config
	token            string
	tokenProvider    func(context.Context) (string, error)
	deadline         time.Duration
	batchDeadline    time.Duration
	maxAttempts      int
	initialBackoff   time.Duration
	maxBackoff       time.Duration
	onRetry          func(RetryEvent)
	extraDialOptions []grpc.DialOption
}

func defaults() settings {
	return settings{
		deadline:       time.Second,
		batchDeadline:  10 * time.Second,
		maxAttempts:    3,
		initialBackoff: 50 * time.Millisecond,
		maxBackoff:     500 * time.Millisecond,
	}
}

// WithTLS turns TLS on with the system's root certificates (implied by WithCA and WithClientCertificate).
func WithTLS() Option { return func(s *settings) { s.tls = true } }

// WithCA trusts the CA certificate(s) in pem (PEM text) for the server's certificate, instead of the
// system's roots.
func WithCA(pem []byte) Option { return func(s *settings) { s.tls, s.caPEM = true, pem } }

// WithClientCertificate presents a client certificate (mTLS), for a server that requires one.
func WithClientCertificate(certPEM, keyPEM []byte) Option {
	return func(s *settings) { s.tls, s.certPEM, s.keyPEM = true, certPEM, keyPEM }
}

// WithTLSConfig uses a TLS configuration of the caller's own, instead of WithTLS/WithCA/WithClientCertificate.
func WithTLSConfig(config *tls.Config) Option { return func(s *settings) { s.tlsConfig = config } }

// WithToken sends "authorization: Bearer <token>" with every call.
func WithToken(token string) Option { return func(s *settings) { s.token = token } }

// WithTokenProvider asks provider before every call for the bearer token to send (e.g. a refreshed one).
func WithTokenProvider(provider func(context.Context) (string, error)) Option {
	return func(s *settings) { s.tokenProvider = provider }
}

// WithDeadline sets the time budget of a Score call, retries included (default 1 s).
func WithDeadline(budget time.Duration) Option { return func(s *settings) { s.deadline = budget } }

// WithBatchDeadline sets the time budget of a ScoreBatch call, retries included (default 10 s).
func WithBatchDeadline(budget time.Duration) Option {
	return func(s *settings) { s.batchDeadline = budget }
}

// WithMaxAttempts sets the attempts per unary call when the server answers UNAVAILABLE or CANCELLED
// (default 3; 1 disables retries).
func WithMaxAttempts(attempts int) Option {
	return func(s *settings) { s.maxAttempts = max(1, attempts) }
}

// WithBackoff sets the wait before the first retry, doubled per retry up to maxBackoff (defaults 50 ms
// and 500 ms).
func WithBackoff(initial, maxBackoff time.Duration) Option {
	return func(s *settings) { s.initialBackoff, s.maxBackoff = initial, maxBackoff }
}

// WithOnRetry calls onRetry before each retry.
func WithOnRetry(onRetry func(RetryEvent)) Option { return func(s *settings) { s.onRetry = onRetry } }

// WithDialOptions adds options of the underlying grpc.NewClient (interceptors, keepalive, ...).
func WithDialOptions(options ...grpc.DialOption) Option {
	return func(s *settings) { s.extraDialOptions = append(s.extraDialOptions, options...) }
}

// dialOptions turns the settings into grpc.NewClient options, refusing contradictions and a token that
// would cross the network in plaintext.
func (s *settings) dialOptions(target string) ([]grpc.DialOption, error) {
	if (s.certPEM == nil) != (s.keyPEM == nil) {
		return nil, errors.New("sentinel: client certificate and key go together")
	}
	if s.token != "" && s.tokenProvider != nil {
		return nil, errors.New("sentinel: give WithToken or WithTokenProvider, not both")
	}
	if s.tls && s.tlsConfig != nil {
		return nil, errors.New("sentinel: give WithTLSConfig or WithTLS/WithCA/WithClientCertificate, not both")
	}
	transport := insecure.NewCredentials()
	switch {
	case s.tlsConfig != nil:
		transport = credentials.NewTLS(s.tlsConfig)
	case s.tls:
		config, err := s.buildTLSConfig()
		if err != nil {
			return nil, err
		}
		transport = credentials.NewTLS(config)
	}
	options := []grpc.DialOption{grpc.WithTransportCredentials(transport)}
	provider := s.tokenProvider
	if s.token != "" {
		token := s.token
		provider = func(context.Context) (string, error) { return token, nil }
	}
	if provider != nil {
		if !s.tls && s.tlsConfig == nil && !isLoopback(target) {
			return nil, fmt.Errorf("sentinel: a token would cross the network in plaintext to %s: use TLS", target)
		}
		options = append(options, grpc.WithPerRPCCredentials(bearer{provider}))
	}
	return append(options, s.extraDialOptions...), nil
}

func (s *settings) buildTLSConfig() (*tls.Config, error) {
	config := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.caPEM != nil {
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(s.caPEM) {
			return nil, errors.New("sentinel: no certificate in the CA PEM")
		}
		config.RootCAs = roots
	}
	if s.certPEM != nil {
		pair, err := tls.X509KeyPair(s.certPEM, s.keyPEM)
		if err != nil {
			return nil, fmt.Errorf("sentinel: client certificate: %w", err)
		}
		config.Certificates = []tls.Certificate{pair}
	}
	return config, nil
}

// bearer sends the provider's token with every call. It allows plaintext because dialOptions has
// already refused plaintext to anything but this machine.
type bearer struct {
	provider func(context.Context) (string, error)
}

func (b bearer) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	token, err := b.provider(ctx)
	if err != nil {
		return nil, fmt.Errorf("sentinel: token provider: %w", err)
	}
	return map[string]string{"authorization": "Bearer " + token}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }

// isLoopback tells whether a gRPC target ("host:port", "dns:///host:port", "[::1]:port", "unix:path")
// names this machine.
func isLoopback(target string) bool {
	if strings.HasPrefix(target, "unix:") {
		return true
	}
	for _, scheme := range []string{"dns:///", "ipv4:", "ipv6:", "passthrough:///"} {
		target = strings.TrimPrefix(target, scheme)
	}
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		host = target
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
