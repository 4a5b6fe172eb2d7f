package sqs

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/aws/aws-sdk-go-v2/aws"
)

// Defaults applied to zero-valued Options fields, and SQS's own limits.
const (
	DefaultName           = "sqs"
	DefaultRequestBytes   = 256 << 10
	DefaultRequestTimeout = 10 * time.Second
	DefaultMaxInFlight    = 8
	DefaultGroupID        = "sluice"

	// MaxRequestBytes is SQS's limit on one SendMessageBatch (and on one
	// message): 1 MiB, the sum of bodies and message attributes.
	MaxRequestBytes = 1 << 20
	// MaxBatchEntries is SQS's limit on entries per SendMessageBatch.
	MaxBatchEntries = 10
	// MaxAttributes is SQS's limit on message attributes per message.
	MaxAttributes = 10
	// minRequestBytes keeps room for sluice's own attributes and a body.
	minRequestBytes = 1 << 10
)

// Options configures a Writer. The zero value of every field except URL
// means the documented default.
type Options struct {
	// Name is the sink name: metric label sink="<name>" and log attribute.
	// Default "sqs".
	Name string
	// URL is the queue URL, e.g.
	// https://sqs.eu-west-1.amazonaws.com/123456789012/orders (a name
	// ending in .fifo is a FIFO queue). Required.
	URL string
	// Region signs the requests. Default: the region in URL's host
	// (sqs.<region>.amazonaws.com), else the AWS SDK's own (AWS_REGION,
	// AWS_DEFAULT_REGION, the shared config profile); none is an error.
	Region string
	// Endpoint overrides the SQS endpoint the requests go to (a compatible
	// server, a VPC endpoint); "" = the AWS endpoint of Region.
	Endpoint string
	// Credentials, nil = the AWS SDK's default chain: AWS_ACCESS_KEY_ID /
	// AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, web identity
	// (AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN: IRSA on EKS), shared
	// files and AWS_PROFILE, ECS/EKS Pod Identity container credentials,
	// EC2 instance role. Resolved at the first request, refreshed by the
	// SDK before they expire.
	Credentials aws.CredentialsProvider
	// RequestBytes is the byte budget of one SendMessageBatch: bodies plus
	// message attributes (name, type and value of each), as SQS counts
	// them. A message larger than this on its own fails permanently with
	// reason too_large before anything is sent. Default 256 KiB; at most
	// 1 MiB (SQS's limit). Keep it at or below the queue's
	// MaximumMessageSize when that is lower.
	RequestBytes int
	// RequestTimeout bounds one SendMessageBatch request. Default 10s.
	RequestTimeout time.Duration
	// MaxInFlight is how many SendMessageBatch requests of one Write a
	// standard queue gets at once. FIFO queues always send one at a time
	// (per-group order). Default 8.
	MaxInFlight int
	// GroupID is the MessageGroupId of keyless messages on a FIFO queue.
	// Default "sluice".
	GroupID string
	// Logger receives state changes. nil = no logs.
	Logger *slog.Logger
	// Metrics receives the sink's metrics. nil = no metrics.
	Metrics *metrics.Set
}

// config is Options with defaults applied and the URL parsed.
type config struct {
	Options
	queueName string
	fifo      bool
	urlRegion string // region found in the URL's host, or ""
	// rawBodies sends every value as the body unchanged, even when SQS
	// will refuse it: tests use it to get a per-entry Failed answer from
	// a real server.
	rawBodies bool
}

// awsHostRE matches the regional SQS hosts: sqs.<region>.amazonaws.com
// (and .com.cn), <region>.queue.amazonaws.com, and VPC endpoint names
// ending in sqs.<region>.vpce.amazonaws.com.
var awsHostRE = regexp.MustCompile(`(?:^|\.)(?:sqs\.([a-z0-9-]+)(?:\.vpce)?\.amazonaws\.com(?:\.cn)?|([a-z0-9-]+)\.queue\.amazonaws\.com(?:\.cn)?)$`)

// queueNameRE is SQS's rule for queue names (80 characters including a
// .fifo suffix).
var queueNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,75}(\.fifo)?$|^[A-Za-z0-9_-]{1,80}$`)

// ParseQueueURL checks a queue URL and returns the queue name, whether it
// is a FIFO queue and the region named by its host ("" for a host that is
// not an AWS one).
func ParseQueueURL(s string) (name string, fifo bool, region string, err error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", false, "", fmt.Errorf("not a URL: %w", errors.Unwrap(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", false, "", fmt.Errorf("must be an http:// or https:// queue URL, got scheme %q", u.Scheme)
	}
	if u.Host == "" {
		return "", false, "", errors.New("has no host")
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) != 2 || parts[0] == "" {
		return "", false, "", fmt.Errorf("path must be /<account>/<queue name>, got %q", u.Path)
	}
	name = parts[1]
	if !queueNameRE.MatchString(name) {
		return "", false, "", fmt.Errorf("queue name %q is not valid for SQS (up to 80 of A-Z a-z 0-9 _ -, FIFO names end in .fifo)", name)
	}
	if m := awsHostRE.FindStringSubmatch(strings.ToLower(u.Hostname())); m != nil {
		region = m[1] + m[2]
	}
	return name, strings.HasSuffix(name, ".fifo"), region, nil
}

func (o Options) withDefaults() (config, error) {
	c := config{Options: o}
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.URL == "" {
		return c, errors.New("sqs: no queue URL")
	}
	var err error
	c.queueName, c.fifo, c.urlRegion, err = ParseQueueURL(c.URL)
	if err != nil {
		return c, fmt.Errorf("sqs: queue URL %s", err)
	}
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return c, fmt.Errorf("sqs: endpoint %q is not an http:// or https:// URL", c.Endpoint)
		}
	}
	switch {
	case c.RequestBytes < 0:
		return c, fmt.Errorf("sqs: negative request bytes %d", c.RequestBytes)
	case c.RequestBytes == 0:
		c.RequestBytes = DefaultRequestBytes
	case c.RequestBytes < minRequestBytes || c.RequestBytes > MaxRequestBytes:
		return c, fmt.Errorf("sqs: request bytes %d out of range (%d to %d)", c.RequestBytes, minRequestBytes, MaxRequestBytes)
	}
	switch {
	case c.RequestTimeout < 0:
		return c, fmt.Errorf("sqs: negative request timeout %v", c.RequestTimeout)
	case c.RequestTimeout == 0:
		c.RequestTimeout = DefaultRequestTimeout
	}
	switch {
	case c.MaxInFlight < 0:
		return c, fmt.Errorf("sqs: negative max in flight %d", c.MaxInFlight)
	case c.MaxInFlight == 0:
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.GroupID == "" {
		c.GroupID = DefaultGroupID
	}
	if !ValidGroupID(c.GroupID) {
		return c, fmt.Errorf("sqs: group id %q is not valid (1 to 128 of A-Z a-z 0-9 and ASCII punctuation)", c.GroupID)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}
