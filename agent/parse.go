package agent

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/sluiceio/sluice/sink"
)

// apiError is an error reply: HTTP status, stable code, message.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

// validID accepts a chained sluice id: 1–128 printable ASCII bytes.
func validID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

// matchTopic reports whether topic matches one of the globs (path.Match
// syntax: *, ?, [...]). Globs are validated at start-up.
func matchTopic(globs []string, topic string) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, topic); ok {
			return true
		}
	}
	return false
}

// ValidateGlobs reports a malformed topic glob.
func ValidateGlobs(globs []string) error {
	for _, g := range globs {
		if _, err := path.Match(g, ""); err != nil {
			return fmt.Errorf("bad topic glob %q: %w", g, err)
		}
	}
	return nil
}

// splitNDJSON calls fn for every non-empty line of body (a trailing \r is
// dropped). Line bytes alias body.
func splitNDJSON(body []byte, fn func(line []byte) *apiError) *apiError {
	for len(body) > 0 {
		i := bytes.IndexByte(body, '\n')
		var line []byte
		if i < 0 {
			line, body = body, nil
		} else {
			line, body = body[:i], body[i+1:]
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) == 0 {
			continue
		}
		if err := fn(line); err != nil {
			return err
		}
	}
	return nil
}

type batchMessage struct {
	Topic    string            `json:"topic"`
	Key      *string           `json:"key"`
	Value    json.RawMessage   `json:"value"`
	ValueB64 *string           `json:"value_b64"`
	Headers  map[string]string `json:"headers"`
	ID       string            `json:"id"`
}

// parseBatch parses a /v1/messages body. Values given as JSON keep their
// exact bytes from the request.
// errTrailing: a JSON body holds more than its one document.
var errTrailing = errors.New("trailing data after the JSON object")

// errNotObject: a request body is a JSON document other than an object.
// encoding/json would decode null into the request as if the body were
// empty.
var errNotObject = errors.New("the body is not a JSON object")

// decodeStrict decodes body as exactly one JSON object into v, refusing
// unknown fields and anything after the document (json.Decoder reads the
// first document only, and More does not see a stray '}' or ']').
func decodeStrict(body []byte, v any) error {
	if b := bytes.TrimLeft(body, " \t\r\n"); len(b) > 0 && b[0] != '{' {
		return errNotObject
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errTrailing
	}
	return nil
}

// parseBatch parses a /v1/messages body, one message at a time: hold
// reserves the memory of each growth of the message slice before it is
// taken (as NDJSON does), so a body of many small messages cannot take
// many times its size in decoded structs.
func parseBatch(body []byte, maxMessage int, hold func(n int64) *apiError) ([]Msg, *apiError) {
	// encoding/json would replace invalid UTF-8 by U+FFFD: a key changed
	// that way lands on another partition. JSON is UTF-8; binary goes in
	// value_b64.
	if !utf8.Valid(body) {
		return nil, errorf(http.StatusBadRequest, "bad_request", "JSON batch is not valid UTF-8 (send binary values as value_b64)")
	}
	bad := func(err error) *apiError {
		return errorf(http.StatusBadRequest, "bad_request", "invalid JSON batch: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := expectDelim(dec, '{'); err != nil {
		return nil, bad(err)
	}
	var out []Msg
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, bad(err)
		}
		// encoding/json matches field names without regard to case.
		if k, _ := t.(string); !strings.EqualFold(k, "messages") {
			return nil, bad(fmt.Errorf("json: unknown field %q", k))
		}
		out = out[:0] // a repeated key: the last one counts, as in encoding/json
		if t, err = dec.Token(); err != nil {
			return nil, bad(err)
		}
		if t == nil { // "messages": null
			continue
		}
		if d, ok := t.(json.Delim); !ok || d != '[' {
			return nil, bad(fmt.Errorf(`"messages" is not an array`))
		}
		for dec.More() {
			var bm batchMessage
			if err := dec.Decode(&bm); err != nil {
				return nil, bad(err)
			}
			if len(out) == cap(out) {
				grow := max(cap(out), 64)
				if e := hold(int64(grow) * msgCost); e != nil {
					return nil, e
				}
				out = slices.Grow(out, grow)
			}
			m, e := batchMsg(len(out), &bm, maxMessage)
			if e != nil {
				return nil, e
			}
			out = append(out, m)
		}
		if err := expectDelim(dec, ']'); err != nil {
			return nil, bad(err)
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return nil, bad(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, bad(errTrailing)
	}
	if len(out) == 0 {
		return nil, errorf(http.StatusBadRequest, "bad_request", `"messages" is empty or missing`)
	}
	return out, nil
}

// expectDelim reads the next token, which must be d.
func expectDelim(dec *json.Decoder, d json.Delim) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	if got, ok := t.(json.Delim); !ok || got != d {
		return fmt.Errorf("want %q, got %v", rune(d), t)
	}
	return nil
}

// batchMsg checks and converts message i of a JSON batch.
func batchMsg(i int, bm *batchMessage, maxMessage int) (Msg, *apiError) {
	m := Msg{Topic: bm.Topic, Partition: sink.NoPartition}
	if !sink.ValidTopic(bm.Topic) {
		return m, errorf(http.StatusBadRequest, "bad_topic", "message %d: invalid topic %q (1-249 of [a-zA-Z0-9._-])", i, bm.Topic)
	}
	switch {
	case bm.Value != nil && bm.ValueB64 != nil:
		return m, errorf(http.StatusBadRequest, "bad_request", "message %d: both value and value_b64", i)
	case bm.ValueB64 != nil:
		v, err := base64.StdEncoding.DecodeString(*bm.ValueB64)
		if err != nil {
			return m, errorf(http.StatusBadRequest, "bad_request", "message %d: value_b64: %v", i, err)
		}
		m.Value = v
	case bm.Value != nil:
		m.Value = bm.Value
	default:
		return m, errorf(http.StatusBadRequest, "bad_request", "message %d: value or value_b64 is required", i)
	}
	if len(m.Value) > maxMessage {
		return m, errorf(http.StatusRequestEntityTooLarge, "too_large", "message %d: %d bytes > %d", i, len(m.Value), maxMessage)
	}
	if bm.Key != nil {
		m.Key = []byte(*bm.Key)
	}
	if bm.ID != "" {
		if !validID(bm.ID) {
			return m, errorf(http.StatusBadRequest, "bad_request", "message %d: invalid id", i)
		}
		m.ID = bm.ID
	}
	if len(bm.Headers) > 0 {
		names := make([]string, 0, len(bm.Headers))
		for k := range bm.Headers {
			if k == "" || strings.EqualFold(k, sink.IDHeader) {
				return m, errorf(http.StatusBadRequest, "bad_request", "message %d: header name %q not allowed (use \"id\" to keep a sluice-id)", i, k)
			}
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			m.Headers = append(m.Headers, sink.Header{Key: k, Value: []byte(bm.Headers[k])})
		}
	}
	return m, nil
}
