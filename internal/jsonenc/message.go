package jsonenc

import (
	"encoding/base64"
	"unicode/utf8"

	"github.com/sluiceio/sluice/sink"
)

// AppendKey appends a message's key as an object member after others:
// `,"key":"…"` when it is valid UTF-8, else `,"key_b64":"…"` (standard
// base64, padded), so that the bytes read back exactly. A nil key appends
// nothing.
func AppendKey(dst, key []byte) []byte {
	switch {
	case key == nil:
		return dst
	case utf8.Valid(key):
		dst = append(dst, `,"key":`...)
		return AppendString(dst, key)
	}
	dst = append(dst, `,"key_b64":"`...)
	dst = base64.StdEncoding.AppendEncode(dst, key)
	return append(dst, '"')
}

// AppendHeaders appends a message's headers as an object member after
// others: `,"headers":{…}` when every value is valid UTF-8, else
// `,"headers_b64":{…}` with every value base64-encoded, so that one object
// holds all headers in their order and the bytes read back exactly.
// Header names are strings. No headers append nothing.
func AppendHeaders(dst []byte, hs []sink.Header) []byte {
	if len(hs) == 0 {
		return dst
	}
	b64 := false
	for i := range hs {
		if !utf8.Valid(hs[i].Value) {
			b64 = true
			break
		}
	}
	if b64 {
		dst = append(dst, `,"headers_b64":{`...)
	} else {
		dst = append(dst, `,"headers":{`...)
	}
	for i := range hs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendString(dst, hs[i].Key)
		dst = append(dst, ':')
		if b64 {
			dst = append(dst, '"')
			dst = base64.StdEncoding.AppendEncode(dst, hs[i].Value)
			dst = append(dst, '"')
		} else {
			dst = AppendString(dst, hs[i].Value)
		}
	}
	return append(dst, '}')
}
