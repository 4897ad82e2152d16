// Command securecheck tries the client's transport options against real servers and prints what came
// back as one JSON object, for tests/test_client_go.py to check (the Go twin of clients/node/test/
// secure-against-server.mjs).
//
// Usage: securecheck <mTLS server address> <ca.pem> <client.pem> <client-key.pem>
// <address of a plaintext server that records the authorization header it gets>
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	sentinel "github.com/sentinelstream/sentinel/clients/go"
	"github.com/sentinelstream/sentinel/clients/go/sentinelv1"
)

func transaction(id string) *sentinelv1.Transaction {
	return &sentinelv1.Transaction{
		TransactionId: "go-tls-" + id,
		AccountId:     "C-go-tls",
		Type:          sentinelv1.TransactionType_TRANSACTION_TYPE_PAYMENT,
		Amount:        &sentinelv1.Money{Amount: "12.50", Currency: "EUR"},
		EventTime:     timestamppb.New(time.Now().Add(-time.Second)),
	}
}

// attempt scores one transaction with the given options: the decision's transaction id, or the code.
func attempt(address, id string, options ...sentinel.Option) map[string]any {
	options = append([]sentinel.Option{sentinel.WithDeadline(10 * time.Second), sentinel.WithMaxAttempts(1)}, options...)
	client, err := sentinel.New(address, options...)
	if err != nil {
		return map[string]any{"error": err.Error()}
	}
	defer client.Close()
	decision, err := client.Score(context.Background(), transaction(id))
	if err != nil {
		return map[string]any{"code": int(status.Code(err))}
	}
	return map[string]any{"transactionId": decision.GetTransactionId()}
}

func readAll(paths ...string) [][]byte {
	contents := make([][]byte, len(paths))
	for i, path := range paths {
		content, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		contents[i] = content
	}
	return contents
}

func main() {
	if len(os.Args) != 6 {
		fmt.Fprintln(os.Stderr, "usage: securecheck <mTLS address> <ca.pem> <client.pem> <client-key.pem> <recorder address>")
		os.Exit(2)
	}
	address, recorder := os.Args[1], os.Args[5]
	pem := readAll(os.Args[2], os.Args[3], os.Args[4])
	ca, cert, key := pem[0], pem[1], pem[2]
	report := map[string]any{
		"mtls":                     attempt(address, "1", sentinel.WithCA(ca), sentinel.WithClientCertificate(cert, key)),
		"withoutClientCertificate": attempt(address, "2", sentinel.WithCA(ca)),
	}

	issued := 0
	provider := sentinel.WithTokenProvider(func(context.Context) (string, error) {
		issued++
		return fmt.Sprintf("token-%d", issued), nil
	})
	tokens, err := sentinel.New(recorder, provider, sentinel.WithDeadline(10*time.Second))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, id := range []string{"t1", "t2"} { // one token asked for per call
		if _, err := tokens.Score(context.Background(), transaction(id)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	tokens.Close()
	report["tokensIssued"] = issued

	if client, err := sentinel.New("192.0.2.1:50051", sentinel.WithToken("secret")); err != nil {
		report["plaintextTokenToAnotherMachine"] = err.Error()
	} else {
		client.Close()
		report["plaintextTokenToAnotherMachine"] = "accepted"
	}
	if err := json.NewEncoder(os.Stdout).Encode(report); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
