// Package sentinel is a thin client of SentinelStream's scoring API (sentinel.v1.ScoringService) over
// the generated stubs in package sentinelv1.
//
// What it adds to the generated ScoringServiceClient: a deadline on every unary call (a scoring call
// without one can hold a payment forever) and retries of UNAVAILABLE and CANCELLED answers within that
// deadline. CANCELLED is what a server that begins shutting down (SIGTERM) answers the calls it has
// received but not yet handed to its handlers, and a proxy in front of it (nginx) passes that answer on
// instead of resending the call; a call the caller cancelled itself (its context) is never retried.
// Retrying is safe only because the retried request carries the same idempotency key: the server
// answers a retry with the original decision (marked Replayed) instead of scoring, and recording, the
// transaction twice. The client therefore fills the key in (the transaction id, as the server would)
// and resends the very same request message.
package sentinel

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/sentinelstream/sentinel/clients/go/sentinelv1"
)

// RetryEvent describes one failed attempt that the client is about to retry, for logs and metrics.
type RetryEvent struct {
	Method  string        // "Score" or "ScoreBatch"
	Attempt int           // the attempt that failed, from 1
	Err     error         // its UNAVAILABLE or CANCELLED error
	Backoff time.Duration // how long the client waits before the next attempt
}

// Client calls a SentinelStream server; it is safe for concurrent use. Close it when done.
type Client struct {
	conn     *grpc.ClientConn
	stub     sentinelv1.ScoringServiceClient
	settings settings
}

// New returns a client of the server at target ("host:port", "dns:///host:port", "unix:path"). It
// connects lazily, on the first call. Plaintext unless a TLS option is given.
func New(target string, options ...Option) (*Client, error) {
	s := defaults()
	for _, option := range options {
		option(&s)
	}
	dialOptions, err := s.dialOptions(target)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(target, dialOptions...)
	if err != nil {
		return nil, err
	}
	return &Client{conn: conn, stub: sentinelv1.NewScoringServiceClient(conn), settings: s}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Score returns the decision for one transaction, or the server's status error (see FieldViolations
// for the fields an INVALID_ARGUMENT names). The call, retries included, ends at the client's deadline
// or ctx's, whichever comes first.
func (c *Client) Score(ctx context.Context, transaction *sentinelv1.Transaction) (*sentinelv1.Decision, error) {
	request := &sentinelv1.ScoreRequest{Transaction: withIdempotencyKey(transaction)}
	response, err := retry(ctx, c, "Score", c.settings.deadline, func(ctx context.Context) (*sentinelv1.ScoreResponse, error) {
		return c.stub.Score(ctx, request)
	})
	if err != nil {
		return nil, err
	}
	if response.GetDecision() == nil {
		return nil, errors.New("sentinel: ScoreResponse without a decision")
	}
	return response.GetDecision(), nil
}

// ScoreBatch returns one result per transaction, in order: a Decision, or an ItemError for an invalid
// item (the others are still scored).
func (c *Client) ScoreBatch(ctx context.Context, transactions []*sentinelv1.Transaction) ([]*sentinelv1.ScoreBatchResult, error) {
	request := &sentinelv1.ScoreBatchRequest{Transactions: make([]*sentinelv1.Transaction, len(transactions))}
	for i, transaction := range transactions {
		request.Transactions[i] = withIdempotencyKey(transaction)
	}
	response, err := retry(ctx, c, "ScoreBatch", c.settings.batchDeadline, func(ctx context.Context) (*sentinelv1.ScoreBatchResponse, error) {
		return c.stub.ScoreBatch(ctx, request)
	})
	if err != nil {
		return nil, err
	}
	return response.GetResults(), nil
}

// Stream is one ScoreStream call: Send transactions, Recv responses (matched by TransactionId,
// possibly out of order; an invalid transaction gets a response with an error and the stream stays
// open), CloseSend when done sending. Not safe for concurrent Sends (nor concurrent Recvs).
type Stream struct {
	call grpc.BidiStreamingClient[sentinelv1.ScoreStreamRequest, sentinelv1.ScoreStreamResponse]
}

// ScoreStream opens a long-lived scoring stream. It has no deadline but ctx's, and it is not retried:
// after a broken stream, resend the transactions that got no response (their idempotency keys make
// that safe). Cancel ctx to end the call early.
func (c *Client) ScoreStream(ctx context.Context) (*Stream, error) {
	call, err := c.stub.ScoreStream(ctx)
	if err != nil {
		return nil, err
	}
	return &Stream{call: call}, nil
}

// Send sends one transaction (with its idempotency key filled in); it blocks under back-pressure.
func (s *Stream) Send(transaction *sentinelv1.Transaction) error {
	return s.call.Send(&sentinelv1.ScoreStreamRequest{Transaction: withIdempotencyKey(transaction)})
}

// CloseSend tells the server no more transactions follow; Recv then ends with io.EOF after the last
// response.
func (s *Stream) CloseSend() error { return s.call.CloseSend() }

// Recv returns the next response, io.EOF after the last one, or the call's status error.
func (s *Stream) Recv() (*sentinelv1.ScoreStreamResponse, error) { return s.call.Recv() }

// retry runs call until it succeeds, fails with anything but a retryable answer, runs out of attempts,
// or the next attempt would start after the deadline (budget from now, or ctx's earlier one).
func retry[T any](ctx context.Context, c *Client, method string, budget time.Duration, call func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	deadline, _ := ctx.Deadline()
	s := c.settings
	for attempt := 1; ; attempt++ {
		response, err := call(ctx)
		if err == nil || !retryable(ctx, err) || attempt >= s.maxAttempts {
			return response, err
		}
		backoff := min(s.maxBackoff, s.initialBackoff<<(attempt-1))
		if time.Now().Add(backoff).After(deadline) {
			return response, err
		}
		if s.onRetry != nil {
			s.onRetry(RetryEvent{Method: method, Attempt: attempt, Err: err, Backoff: backoff})
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return response, err
		}
	}
}

// retryable reports whether err is an answer worth another attempt: UNAVAILABLE, or CANCELLED that came
// from the server or a proxy (ctx is still live), not from the caller cancelling ctx.
func retryable(ctx context.Context, err error) bool {
	switch status.Code(err) {
	case codes.Unavailable:
		return true
	case codes.Canceled:
		return ctx.Err() == nil
	default:
		return false
	}
}

// withIdempotencyKey is a copy of the transaction with its idempotency key set: the given key, else the
// transaction id (the server's default), so that every retry of it carries the same key.
func withIdempotencyKey(transaction *sentinelv1.Transaction) *sentinelv1.Transaction {
	message := proto.Clone(transaction).(*sentinelv1.Transaction)
	if message.GetIdempotencyKey() == "" {
		message.IdempotencyKey = message.GetTransactionId()
	}
	return message
}
