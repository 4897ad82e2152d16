// Command scorecheck calls a running SentinelStream server through the client and prints what came back
// as one JSON object, for tests/test_client_go.py to check (the Go twin of clients/node/test/
// score-against-server.mjs).
//
// Usage: scorecheck <server address> <address where nothing listens> [id prefix]
// Transaction ids are "<prefix>-1", "<prefix>-b0", ... (prefix "go" by default).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	sentinel "github.com/sentinelstream/sentinel/clients/go"
	"github.com/sentinelstream/sentinel/clients/go/sentinelv1"
)

var prefix = "go"

func transaction(id string) *sentinelv1.Transaction {
	latitude, longitude := 52.52, 13.4
	return &sentinelv1.Transaction{
		TransactionId:  prefix + "-" + id,
		AccountId:      "C-" + prefix + "-1",
		CounterpartyId: "M-" + prefix + "-1",
		Type:           sentinelv1.TransactionType_TRANSACTION_TYPE_PAYMENT,
		Amount:         &sentinelv1.Money{Amount: "129.90", Currency: "EUR"},
		EventTime:      timestamppb.New(time.Now().Add(-time.Second)),
		Geo:            &sentinelv1.GeoLocation{Latitude: &latitude, Longitude: &longitude, Country: "DE"},
		DeviceId:       prefix + "-device",
	}
}

// asJSON is a message in proto3 JSON (camelCase names, enums by name), as the Node twin prints it.
func asJSON(message proto.Message) json.RawMessage {
	encoded, err := protojson.Marshal(message)
	if err != nil {
		panic(err)
	}
	return encoded
}

type failure struct {
	Rejected        bool     `json:"rejected"`
	Code            int      `json:"code"`
	FieldViolations []string `json:"fieldViolations,omitempty"`
}

func describe(err error) failure {
	fields := []string{}
	for _, violation := range sentinel.FieldViolations(err) {
		fields = append(fields, violation.GetField())
	}
	return failure{Rejected: err != nil, Code: int(status.Code(err)), FieldViolations: fields}
}

type retryRecord struct {
	Method  string `json:"method"`
	Attempt int    `json:"attempt"`
	Code    int    `json:"code"`
}

// retryRecorder collects the client's RetryEvents.
func retryRecorder(into *[]retryRecord) sentinel.Option {
	return sentinel.WithOnRetry(func(event sentinel.RetryEvent) {
		*into = append(*into, retryRecord{event.Method, event.Attempt, int(status.Code(event.Err))})
	})
}

// replaceFirstResponse makes the first Score call's answer get replaced by an error with code on the
// way back: the server has scored and recorded the transaction, the caller sees that error, as after a
// connection dropped mid-call (UNAVAILABLE) or a draining server or proxy cancelled it (CANCELLED).
func replaceFirstResponse(code codes.Code) grpc.UnaryClientInterceptor {
	var once sync.Once
	return func(ctx context.Context, method string, request, reply any, conn *grpc.ClientConn,
		invoker grpc.UnaryInvoker, options ...grpc.CallOption) error {
		if err := invoker(ctx, method, request, reply, conn, options...); err != nil {
			return err
		}
		replaced := false
		once.Do(func() { replaced = true })
		if replaced {
			return status.Error(code, "response replaced (injected by scorecheck)")
		}
		return nil
	}
}

// scoreWithFirstResponseReplaced scores transaction id through a client whose first answer is replaced
// by code; the decision it ends with and the retries it made.
func scoreWithFirstResponseReplaced(ctx context.Context, address string, code codes.Code, id string) (map[string]any, error) {
	retries := []retryRecord{}
	client, err := sentinel.New(address, sentinel.WithDeadline(10*time.Second), retryRecorder(&retries),
		sentinel.WithDialOptions(grpc.WithUnaryInterceptor(replaceFirstResponse(code))))
	if err != nil {
		return nil, err
	}
	defer client.Close()
	decision, err := client.Score(ctx, transaction(id))
	if err != nil {
		return nil, fmt.Errorf("Score with its first answer replaced by %v: %w", code, err)
	}
	return map[string]any{"decision": asJSON(decision), "retries": retries}, nil
}

func run(address, deadAddress string) (map[string]any, error) {
	ctx := context.Background()
	report := map[string]any{}
	client, err := sentinel.New(address, sentinel.WithDeadline(10*time.Second))
	if err != nil {
		return nil, err
	}
	defer client.Close()

	first := transaction("1")
	decision, err := client.Score(ctx, first)
	if err != nil {
		return nil, fmt.Errorf("Score: %w", err)
	}
	report["score"] = asJSON(decision)
	if decision, err = client.Score(ctx, first); err != nil { // same key, same transaction: replayed
		return nil, fmt.Errorf("Score again: %w", err)
	}
	report["scoreAgain"] = asJSON(decision)

	bad := transaction("bad")
	bad.Amount.Amount = "-3"
	_, err = client.Score(ctx, bad)
	report["invalid"] = describe(err)

	invalidCurrency := transaction("b1")
	invalidCurrency.Amount.Currency = "XYZ"
	results, err := client.ScoreBatch(ctx, []*sentinelv1.Transaction{transaction("b0"), invalidCurrency, transaction("b2")})
	if err != nil {
		return nil, fmt.Errorf("ScoreBatch: %w", err)
	}
	batch := []json.RawMessage{}
	for _, result := range results {
		batch = append(batch, asJSON(result))
	}
	report["batch"] = batch

	streamed, err := scoreStream(ctx, client)
	if err != nil {
		return nil, fmt.Errorf("ScoreStream: %w", err)
	}
	report["stream"] = streamed

	if report["lostResponse"], err = scoreWithFirstResponseReplaced(ctx, address, codes.Unavailable, "lost"); err != nil {
		return nil, err
	}
	if report["cancelledResponse"], err = scoreWithFirstResponseReplaced(ctx, address, codes.Canceled, "cancelled"); err != nil {
		return nil, err
	}

	// A call its caller cancelled ends CANCELLED at once and is not retried.
	callerRetries := []retryRecord{}
	patient, err := sentinel.New(address, sentinel.WithDeadline(10*time.Second), retryRecorder(&callerRetries))
	if err != nil {
		return nil, err
	}
	defer patient.Close()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = patient.Score(cancelled, transaction("caller-cancelled"))
	report["callerCancelled"] = map[string]any{"rejected": err != nil, "code": int(status.Code(err)), "retries": callerRetries}

	unreachableRetries := []retryRecord{}
	unreachable, err := sentinel.New(deadAddress, sentinel.WithDeadline(5*time.Second), sentinel.WithMaxAttempts(3),
		sentinel.WithBackoff(10*time.Millisecond, 500*time.Millisecond), retryRecorder(&unreachableRetries))
	if err != nil {
		return nil, err
	}
	defer unreachable.Close()
	_, err = unreachable.Score(ctx, transaction("retry"))
	report["unreachable"] = map[string]any{"rejected": err != nil, "code": int(status.Code(err)), "retries": unreachableRetries}
	return report, nil
}

// scoreStream sends five transactions and an invalid one over one stream and collects every response.
func scoreStream(ctx context.Context, client *sentinel.Client) ([]json.RawMessage, error) {
	stream, err := client.ScoreStream(ctx)
	if err != nil {
		return nil, err
	}
	toSend := []*sentinelv1.Transaction{}
	for i := range 5 {
		toSend = append(toSend, transaction(fmt.Sprintf("s%d", i)))
	}
	unspecified := transaction("s-bad")
	unspecified.Type = sentinelv1.TransactionType_TRANSACTION_TYPE_UNSPECIFIED
	toSend = append(toSend, unspecified)
	sent := make(chan error, 1)
	go func() { // send while receiving, as a long-lived stream would
		for _, item := range toSend {
			if err := stream.Send(item); err != nil {
				sent <- err
				return
			}
		}
		sent <- stream.CloseSend()
	}()
	responses := []json.RawMessage{}
	for {
		response, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, err
		}
		responses = append(responses, asJSON(response))
	}
	return responses, <-sent
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: scorecheck <server address> <dead address> [id prefix]")
		os.Exit(2)
	}
	if len(os.Args) > 3 {
		prefix = os.Args[3]
	}
	report, err := run(os.Args[1], os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(report); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
