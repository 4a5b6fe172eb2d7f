package kafkaproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Codecs as numbered in a record batch's attributes (bits 0-2).
const (
	codecNone   = 0
	codecGzip   = 1
	codecSnappy = 2
	codecLz4    = 3
	codecZstd   = 4
)

var (
	errTooBig     = errors.New("decompressed batch over the size limit")
	errBadCodec   = errors.New("unknown compression codec")
	xerialPrefix  = []byte{130, 'S', 'N', 'A', 'P', 'P', 'Y', 0}
	xerialHdrSize = 16 // prefix, version (4), compatible version (4)
)

// decompressor decodes the records section of a batch, never producing
// more than max bytes (a small compressed bomb is refused, not expanded).
// Safe for concurrent use.
type decompressor struct {
	max  int
	zstd *zstd.Decoder // DecodeAll is safe for concurrent use
	gz   sync.Pool
	lz   sync.Pool
}

func newDecompressor(max int) (*decompressor, error) {
	zd, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(2), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxMemory(uint64(max)))
	if err != nil {
		return nil, err
	}
	return &decompressor{max: max, zstd: zd}, nil
}

func (d *decompressor) close() { d.zstd.Close() }

func (d *decompressor) decompress(codec int, src []byte) ([]byte, error) {
	switch codec {
	case codecNone:
		return src, nil
	case codecGzip:
		zr, _ := d.gz.Get().(*gzip.Reader)
		var err error
		if zr == nil {
			zr, err = gzip.NewReader(bytes.NewReader(src))
		} else {
			err = zr.Reset(bytes.NewReader(src))
		}
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		defer d.gz.Put(zr)
		return d.readBounded(zr)
	case codecSnappy:
		if bytes.HasPrefix(src, xerialPrefix) {
			return d.xerial(src)
		}
		return d.snappyBlock(nil, src)
	case codecLz4:
		lr, _ := d.lz.Get().(*lz4.Reader)
		if lr == nil {
			lr = lz4.NewReader(nil)
		}
		lr.Reset(bytes.NewReader(src))
		defer d.lz.Put(lr)
		return d.readBounded(lr)
	case codecZstd:
		out, err := d.zstd.DecodeAll(src, nil)
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) || len(out) > d.max {
			return nil, errTooBig
		}
		return out, err
	}
	return nil, errBadCodec
}

func (d *decompressor) readBounded(r io.Reader) ([]byte, error) {
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(r, int64(d.max)+1))
	if err != nil {
		return nil, err
	}
	if n > int64(d.max) {
		return nil, errTooBig
	}
	return buf.Bytes(), nil
}

// snappyBlock appends the decoding of one raw snappy block to dst.
func (d *decompressor) snappyBlock(dst, src []byte) ([]byte, error) {
	n, err := s2.DecodedLen(src)
	if err != nil {
		return nil, fmt.Errorf("snappy: %w", err)
	}
	if n > d.max-len(dst) {
		return nil, errTooBig
	}
	out, err := s2.Decode(nil, src)
	if err != nil {
		return nil, fmt.Errorf("snappy: %w", err)
	}
	return append(dst, out...), nil
}

// xerial decodes the framing of the Java client's snappy stream: a 16 byte
// header, then blocks each behind a big-endian int32 length.
func (d *decompressor) xerial(src []byte) ([]byte, error) {
	if len(src) < xerialHdrSize {
		return nil, errors.New("snappy: short xerial header")
	}
	src = src[xerialHdrSize:]
	var out []byte
	for len(src) > 0 {
		if len(src) < 4 {
			return nil, errors.New("snappy: truncated xerial block length")
		}
		n := binary.BigEndian.Uint32(src)
		src = src[4:]
		if uint64(n) > uint64(len(src)) {
			return nil, errors.New("snappy: xerial block past the end")
		}
		var err error
		if out, err = d.snappyBlock(out, src[:n]); err != nil {
			return nil, err
		}
		src = src[n:]
	}
	return out, nil
}
