package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// upstreamPool is several connections to the gRPC server used in turn, one per call. The server's
// workers share its port with SO_REUSEPORT and the kernel assigns each connection to one worker, so a
// single connection (all a grpc.ClientConn keeps to one address) would leave the other workers idle.
type upstreamPool struct {
	conns []*grpc.ClientConn
	next  atomic.Uint64
}

var _ grpc.ClientConnInterface = (*upstreamPool)(nil)

func dialUpstream(address string, connections int, pinnedCert string, maxMessageBytes int) (*upstreamPool, error) {
	if connections < 1 {
		return nil, errors.New("-upstream-connections must be at least 1")
	}
	transport := insecure.NewCredentials()
	if pinnedCert != "" {
		if _, err := readLeaf(pinnedCert); err != nil {
			return nil, err
		}
		transport = credentials.NewTLS(pinnedTLS(pinnedCert))
	}
	pool := &upstreamPool{}
	for range connections {
		conn, err := grpc.NewClient(address,
			grpc.WithTransportCredentials(transport),
			// Reconnect within a second: the gateway may start before the server's workers listen, and a
			// restarted worker should get its share again at once (gRPC's default backs off to 2 minutes).
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
				MinConnectTimeout: 5 * time.Second,
			}),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageBytes), grpc.MaxCallSendMsgSize(maxMessageBytes)),
		)
		if err != nil {
			pool.Close()
			return nil, fmt.Errorf("upstream %s: %w", address, err)
		}
		conn.Connect()
		pool.conns = append(pool.conns, conn)
	}
	return pool, nil
}

// pick returns the next connection that is not failing, else the next one (whose call then fails fast
// with UNAVAILABLE): a connection that failed while the server was starting is passed over until it
// reconnects, instead of failing one call in len(conns).
func (p *upstreamPool) pick() *grpc.ClientConn {
	start, count := p.next.Add(1), uint64(len(p.conns))
	for offset := range count {
		if conn := p.conns[(start+offset)%count]; conn.GetState() != connectivity.TransientFailure {
			return conn
		}
	}
	return p.conns[start%count]
}

// Invoke sends a unary call on the next connection.
func (p *upstreamPool) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	return p.pick().Invoke(ctx, method, args, reply, opts...)
}

// NewStream opens a stream on the next connection.
func (p *upstreamPool) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return p.pick().NewStream(ctx, desc, method, opts...)
}

// Close closes every connection.
func (p *upstreamPool) Close() {
	for _, conn := range p.conns {
		_ = conn.Close()
	}
}

// pinnedTLS accepts exactly the leaf certificate in certFile, whatever name it carries: the gateway runs
// beside the server it was started by and reaches it on loopback, where no CA has anything to say. The
// file is re-read at every handshake, so a certificate rotated on the server (which re-reads the same
// file) is accepted from the next connection on.
func pinnedTLS(certFile string) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by the exact comparison below, not skipped
		VerifyConnection: func(state tls.ConnectionState) error {
			want, err := readLeaf(certFile)
			if err != nil {
				return err
			}
			if len(state.PeerCertificates) == 0 || !bytes.Equal(state.PeerCertificates[0].Raw, want) {
				return fmt.Errorf("the gRPC server's certificate is not the one in %s", certFile)
			}
			return nil
		},
	}
}

// readLeaf returns the DER bytes of the first certificate in a PEM file.
func readLeaf(certFile string) ([]byte, error) {
	data, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, fmt.Errorf("%s holds no PEM certificate", certFile)
		}
		if block.Type == "CERTIFICATE" {
			return block.Bytes, nil
		}
	}
}
