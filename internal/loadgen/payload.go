package loadgen

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// Message values are JSON text that names the run, the key and the key's
// sequence number, padded to the configured size:
//
//	{"run":"3f9a0c1d2e4b5a69","key":"k7","n":123,"pad":"xxxxxxxx"}
//
// so that any consumer (and Verify) can check completeness and per-key
// order from the delivered data alone.

const padField = `,"pad":""`

// appendValue appends the value of message n of key to dst, padded to size
// bytes when size leaves room for the pad field.
func appendValue(dst []byte, run, key string, n int64, size int) []byte {
	start := len(dst)
	dst = append(dst, `{"run":"`...)
	dst = append(dst, run...)
	dst = append(dst, `","key":"`...)
	dst = append(dst, key...)
	dst = append(dst, `","n":`...)
	dst = strconv.AppendInt(dst, n, 10)
	if pad := size - (len(dst) - start) - len(padField) - 1; pad > 0 {
		dst = append(dst, `,"pad":"`...)
		for range pad {
			dst = append(dst, 'x')
		}
		dst = append(dst, '"')
	}
	return append(dst, '}')
}

// appendJSONString appends s as a JSON string. Values and names built here
// are ASCII, so only '"', '\\' and control characters need escaping.
func appendJSONString(dst, s []byte) []byte {
	dst = append(dst, '"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, `\u00`...)
			dst = append(dst, hexDigits[c>>4], hexDigits[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

const hexDigits = "0123456789abcdef"

// ValueFields are the fields of a message value written by a load run.
type ValueFields struct {
	Run string `json:"run"`
	Key string `json:"key"`
	N   int64  `json:"n"`
}

// ParseValue decodes a value written by a load run: the JSON object itself
// (single and ndjson mode) or a JSON string holding it (json mode). ok is
// false for any other value.
func ParseValue(v []byte) (f ValueFields, ok bool) {
	v = bytes.TrimSpace(v)
	if len(v) > 0 && v[0] == '"' {
		var s string
		if json.Unmarshal(v, &s) != nil {
			return f, false
		}
		v = []byte(s)
	}
	if len(v) == 0 || v[0] != '{' {
		return f, false
	}
	var w struct {
		Run *string `json:"run"`
		Key *string `json:"key"`
		N   *int64  `json:"n"`
	}
	if json.Unmarshal(v, &w) != nil || w.Run == nil || w.Key == nil || w.N == nil {
		return f, false
	}
	return ValueFields{Run: *w.Run, Key: *w.Key, N: *w.N}, true
}
