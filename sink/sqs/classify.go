package sqs

import (
	"context"
	"errors"
	"net"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
)

// Reasons attached with sink.WithReason; metric label values.
const (
	ReasonNetwork   = "network"    // connection refused/reset, DNS, a response cut short
	ReasonTimeout   = "timeout"    // RequestTimeout or the caller's deadline
	ReasonCanceled  = "canceled"   // the caller's context was cancelled
	ReasonClosed    = "closed"     // the Writer was closed
	ReasonAuth      = "auth"       // no or bad credentials, signature, expired token, access denied, KMS access
	ReasonThrottled = "throttled"  // RequestThrottled, ThrottlingException, KMS throttling, OverLimit
	ReasonServer    = "server"     // InternalError, ServiceUnavailable, any 5xx
	ReasonNoQueue   = "no_queue"   // QueueDoesNotExist: retried until the queue exists
	ReasonNoResult  = "no_result"  // a 200 answer that lists the entry neither as Successful nor as Failed
	ReasonNotSent   = "not_sent"   // FIFO: an earlier message of the same group failed in this Write
	ReasonTooLarge  = "too_large"  // over RequestBytes (checked here) or MessageTooLong / BatchRequestTooLong from SQS
	ReasonInvalid   = "invalid"    // SQS refused the entry (InvalidMessageContents, InvalidParameterValue, ...)
	ReasonBadHeader = "bad_header" // a header name that cannot be encoded at all
	ReasonOther     = "other"      // anything not recognised: retried
)

// class is what an error from SQS means.
type class struct {
	reason string
	// permanent: about the content of the request or entry; retrying it
	// unchanged cannot succeed.
	permanent bool
	// reached: SQS answered.
	reached bool
}

// normCode strips the prefixes SQS and compatible servers put on error
// codes: "AWS.SimpleQueueService.NonExistentQueue" and
// "com.amazonaws.sqs#QueueDoesNotExist" both name the queue's absence.
func normCode(code string) string {
	if i := strings.LastIndexByte(code, '#'); i >= 0 {
		code = code[i+1:]
	}
	code = strings.TrimPrefix(code, "AWS.SimpleQueueService.")
	code = strings.TrimSuffix(code, "Exception")
	return code
}

// classifyCode maps an SQS error code. senderFault is the per-entry flag
// or the whole answer's fault; it decides codes not listed here.
func classifyCode(code string, senderFault bool) class {
	c := class{reached: true}
	switch normCode(code) {
	case "InvalidClientTokenId", "SignatureDoesNotMatch", "UnrecognizedClient", "AccessDenied",
		"ExpiredToken", "InvalidSecurity", "MissingAuthenticationToken", "IncompleteSignature",
		"InvalidAccessKeyId", "NotAuthorized", "AuthFailure", "RequestExpired", "OptInRequired",
		"KmsAccessDenied", "KMS.AccessDenied", "KmsDisabled", "KMS.Disabled", "KmsInvalidState",
		"KMS.KMSInvalidState", "KmsNotFound", "KMS.NotFound", "KmsInvalidKeyUsage",
		"KMS.InvalidKeyUsage", "KmsOptInRequired", "KMS.OptInRequired":
		// Credentials, permissions and the queue's KMS key are
		// configuration: every message would fail alike.
		c.reason = ReasonAuth
	case "RequestThrottled", "Throttling", "ThrottlingException", "KmsThrottled", "KMS.Throttling",
		"OverLimit", "RequestLimitExceeded", "TooManyRequests":
		c.reason = ReasonThrottled
	case "InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable":
		c.reason = ReasonServer
	case "QueueDoesNotExist", "NonExistentQueue", "QueueDeletedRecently", "ResourceNotFound":
		c.reason = ReasonNoQueue
	case "MessageTooLong", "BatchRequestTooLong":
		c.reason, c.permanent = ReasonTooLarge, true
	case "UnsupportedOperation", "InvalidAction", "InvalidAddress":
		// The endpoint or the protocol is wrong, not the message.
		c.reason = ReasonOther
	default:
		if senderFault {
			c.reason, c.permanent = ReasonInvalid, true
		} else {
			c.reason = ReasonServer
		}
	}
	return c
}

// classify maps the error of a SendMessageBatch request.
func classify(err error) class {
	var (
		apiErr  smithy.APIError
		respErr *awshttp.ResponseError
		netErr  net.Error
		credErr *aws.MissingRegionError
	)
	switch {
	case errors.Is(err, ErrClosed):
		return class{reason: ReasonClosed}
	case errors.Is(err, context.Canceled):
		return class{reason: ReasonCanceled}
	case errors.Is(err, context.DeadlineExceeded):
		return class{reason: ReasonTimeout}
	case errors.As(err, &apiErr) && apiErr.ErrorCode() != "" && !isGenericCode(apiErr.ErrorCode()):
		c := classifyCode(apiErr.ErrorCode(), apiErr.ErrorFault() == smithy.FaultClient)
		if c.reason == ReasonInvalid && errors.As(err, &respErr) && isAuthStatus(respErr.HTTPStatusCode()) {
			c = class{reason: ReasonAuth, reached: true}
		}
		return c
	case errors.As(err, &respErr) && respErr.HTTPStatusCode() != 0:
		// An answer whose body could not be read as an SQS error (a proxy,
		// or a server answering in another protocol).
		switch s := respErr.HTTPStatusCode(); {
		case isAuthStatus(s):
			return class{reason: ReasonAuth, reached: true}
		case s == 429:
			return class{reason: ReasonThrottled, reached: true}
		case s == 404:
			return class{reason: ReasonNoQueue, reached: true}
		case s >= 500:
			return class{reason: ReasonServer, reached: true}
		default:
			return class{reason: ReasonOther, reached: true}
		}
	case isCredentialsError(err), errors.As(err, &credErr):
		return class{reason: ReasonAuth}
	case errors.As(err, &netErr):
		if netErr.Timeout() {
			return class{reason: ReasonTimeout}
		}
		return class{reason: ReasonNetwork}
	}
	s := err.Error()
	if strings.Contains(s, "connection") || strings.Contains(s, "EOF") || strings.Contains(s, "broken pipe") {
		return class{reason: ReasonNetwork}
	}
	return class{reason: ReasonOther}
}

func isAuthStatus(s int) bool { return s == 401 || s == 403 }

// isGenericCode: codes the SDK makes up when the answer had none.
func isGenericCode(code string) bool {
	return code == "UnknownError" || code == "SerializationError"
}

// isCredentialsError reports a failure to get credentials from the chain
// (nothing configured, web identity token unreadable, STS refusing).
func isCredentialsError(err error) bool {
	return strings.Contains(err.Error(), "failed to retrieve credentials") ||
		strings.Contains(err.Error(), "get identity")
}
