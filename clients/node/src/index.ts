/**
 * SentinelStream's Node.js client: the hand-written SentinelClient, the generated types callers use
 * every day by name, and every generated sentinel.v1 module as a namespace (each generated file
 * carries its own DeepPartial/Exact helpers, so they cannot all be flattened into one namespace).
 */
export * from "./client";
export { Decision, Outcome, Reason, RuleAction, RuleHit } from "./gen/sentinel/v1/decision";
export { FieldViolation, ItemError } from "./gen/sentinel/v1/errors";
export { EventsServiceClient } from "./gen/sentinel/v1/events";
export { LedgerServiceClient } from "./gen/sentinel/v1/ledger";
export { RulesServiceClient } from "./gen/sentinel/v1/rules";
export { ScoreBatchResult, ScoreStreamResponse, ScoringServiceClient } from "./gen/sentinel/v1/scoring";
export { BalanceSnapshot, Channel, GeoLocation, Money, Transaction, TransactionType } from "./gen/sentinel/v1/transaction";
export * as decision from "./gen/sentinel/v1/decision";
export * as errors from "./gen/sentinel/v1/errors";
export * as events from "./gen/sentinel/v1/events";
export * as ledger from "./gen/sentinel/v1/ledger";
export * as rules from "./gen/sentinel/v1/rules";
export * as scoring from "./gen/sentinel/v1/scoring";
export * as transaction from "./gen/sentinel/v1/transaction";
export { credentials, Metadata, type ServiceError, status } from "@grpc/grpc-js";
