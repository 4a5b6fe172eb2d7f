package file_test

import (
	"testing"
	"time"

	"github.com/sluiceio/sluice/sink"
	"github.com/sluiceio/sluice/sink/file"
	"github.com/sluiceio/sluice/sink/sinktest"
)

func TestConformance(t *testing.T) {
	var dir string
	sinktest.Run(t, sinktest.Harness{
		New: func(t *testing.T) sink.Sink {
			dir = t.TempDir()
			w, err := file.New(file.Options{Dir: dir, RotateBytes: 4 << 10})
			if err != nil {
				t.Fatal(err)
			}
			return w
		},
		Read: func(t *testing.T) []sink.Message {
			recs, err := file.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			msgs := make([]sink.Message, len(recs))
			for i, r := range recs {
				msgs[i] = r.Message()
			}
			return msgs
		},
		Caps: sinktest.Caps{EmptyKey: true, Partition: true, TimePrecision: time.Nanosecond},
	})
}
