// Command example scores one transaction against a SentinelStream server and prints the decision
// (the README's example): go run ./example 127.0.0.1:50051
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	sentinel "github.com/sentinelstream/sentinel/clients/go"
	"github.com/sentinelstream/sentinel/clients/go/sentinelv1"
)

func main() {
	address := "127.0.0.1:50051"
	if len(os.Args) > 1 {
		address = os.Args[1]
	}
	client, err := sentinel.New(address, sentinel.WithDeadline(2*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	decision, err := client.Score(context.Background(), &sentinelv1.Transaction{
		TransactionId: "example-" + time.Now().Format("150405.000000"),
		AccountId:     "C-example",
		Type:          sentinelv1.TransactionType_TRANSACTION_TYPE_PAYMENT,
		Amount:        &sentinelv1.Money{Amount: "42.00", Currency: "EUR"},
		EventTime:     timestamppb.Now(),
	})
	if status.Code(err) == codes.InvalidArgument {
		for _, violation := range sentinel.FieldViolations(err) {
			log.Printf("invalid %s: %s", violation.GetField(), violation.GetDescription())
		}
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s %s risk=%.3f model=%s\n", decision.GetTransactionId(), decision.GetOutcome(),
		decision.GetRiskScore(), decision.GetModelVersion())
}
