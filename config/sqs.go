package config

import (
	"net/url"
	"regexp"
	"strings"
	"time"
)

// SQSSink holds the settings of a sink of type sqs. Credentials are not
// settings of sluice: they come from the AWS SDK's default chain
// (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN, web identity
// for IRSA, AWS_PROFILE and shared files, container and instance roles).
type SQSSink struct {
	URL            string        `split_words:"true" required:"true" example:"https://sqs.eu-west-1.amazonaws.com/123456789012/orders" desc:"Queue URL; a name ending in .fifo is a FIFO queue. Every message of the sink goes to this one queue."`
	Region         string        `split_words:"true" example:"eu-west-1" desc:"AWS region; empty = the region in the URL's host (sqs.<region>.amazonaws.com), else AWS_REGION or the AWS profile's."`
	Endpoint       string        `split_words:"true" example:"http://127.0.0.1:9324" desc:"SQS endpoint the requests go to instead of the region's (a compatible server, a VPC endpoint)."`
	RequestBytes   Bytes         `split_words:"true" default:"256KiB" example:"1MiB" desc:"Byte budget of one SendMessageBatch (bodies plus message attributes, as SQS counts them), and so the largest message; 1KiB to 1MiB. Keep it at or below the queue's MaximumMessageSize."`
	RequestTimeout time.Duration `split_words:"true" default:"10s" example:"30s" desc:"Bound on one SendMessageBatch request."`
	MaxInFlight    int           `split_words:"true" default:"8" example:"16" desc:"SendMessageBatch requests of one batch sent at once to a standard queue (a FIFO queue gets one at a time, for per-group order)."`
	GroupID        string        `split_words:"true" default:"sluice" example:"orders" desc:"MessageGroupId of messages without a key on a FIFO queue (keyed messages use their key)."`
}

// Limits of SLUICE_<NAME>_REQUEST_BYTES for sqs sinks (SQS's own limit is
// 1 MiB per SendMessageBatch).
const (
	minSQSRequestBytes = 1 << 10
	maxSQSRequestBytes = 1 << 20
)

var (
	sqsQueueNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,75}\.fifo$|^[A-Za-z0-9_-]{1,80}$`)
	sqsGroupIDRE   = regexp.MustCompile("^[!-~]{1,128}$")
	sqsRegionRE    = regexp.MustCompile(`^[a-z0-9-]+$`)
)

func (c *checker) validateSQS(p string, q *SQSSink) {
	if c.ok(p + "_URL") {
		u, err := url.Parse(q.URL)
		parts := []string{}
		if err == nil {
			parts = strings.Split(strings.Trim(u.Path, "/"), "/")
		}
		switch {
		case err != nil:
			c.fail(p+"_URL", "not a URL: %v", unwrapURLError(err))
		case u.Scheme != "http" && u.Scheme != "https":
			c.fail(p+"_URL", "must be an https:// queue URL, got scheme %q", u.Scheme)
		case u.Host == "":
			c.fail(p+"_URL", "has no host")
		case len(parts) != 2 || parts[0] == "":
			c.fail(p+"_URL", "path must be /<account>/<queue name>, got %q", u.Path)
		case !sqsQueueNameRE.MatchString(parts[1]):
			c.fail(p+"_URL", "queue name %q is not valid for SQS (up to 80 of A-Z a-z 0-9 _ -; FIFO names end in .fifo)", parts[1])
		}
	}
	if q.Endpoint != "" {
		u, err := url.Parse(q.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			c.fail(p+"_ENDPOINT", "must be an http:// or https:// URL, got %q", q.Endpoint)
		}
	}
	if q.Region != "" && !sqsRegionRE.MatchString(q.Region) {
		c.fail(p+"_REGION", "must look like eu-west-1, got %q", q.Region)
	}
	if c.ok(p+"_REQUEST_BYTES") && (q.RequestBytes < minSQSRequestBytes || q.RequestBytes > maxSQSRequestBytes) {
		c.fail(p+"_REQUEST_BYTES", "must be between %v and %v (SQS's limit), got %v", Bytes(minSQSRequestBytes), Bytes(maxSQSRequestBytes), q.RequestBytes)
	}
	c.positive(p+"_REQUEST_TIMEOUT", int64(q.RequestTimeout))
	c.positive(p+"_MAX_IN_FLIGHT", int64(q.MaxInFlight))
	if !sqsGroupIDRE.MatchString(q.GroupID) {
		c.fail(p+"_GROUP_ID", "must be 1 to 128 of letters, digits and ASCII punctuation, got %q", q.GroupID)
	}
}
