package sentinel

import (
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"
)

// FieldViolations returns the fields an error names: the google.rpc.BadRequest details that the server
// attaches to INVALID_ARGUMENT (e.g. Field "transaction.amount.amount"), nil for other errors.
// Items of ScoreBatch and ScoreStream carry theirs in ItemError.FieldViolations instead.
func FieldViolations(err error) []*errdetails.BadRequest_FieldViolation {
	var violations []*errdetails.BadRequest_FieldViolation
	for _, detail := range status.Convert(err).Details() {
		if badRequest, ok := detail.(*errdetails.BadRequest); ok {
			violations = append(violations, badRequest.GetFieldViolations()...)
		}
	}
	return violations
}
