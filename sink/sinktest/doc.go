// Package sinktest is the conformance suite every sink backend runs: it
// checks the sink.Sink contract against the real backend, with a harness
// that says how to build the sink, how to read back what arrived upstream,
// and what the upstream can represent.
//
//	func TestConformance(t *testing.T) {
//		var dir string
//		sinktest.Run(t, sinktest.Harness{
//			New: func(t *testing.T) sink.Sink {
//				dir = t.TempDir()
//				w, err := file.New(file.Options{Dir: dir})
//				if err != nil {
//					t.Fatal(err)
//				}
//				return w
//			},
//			Read: func(t *testing.T) []sink.Message { ... read dir ... },
//			Caps: sinktest.Caps{EmptyKey: true, Partition: true, TimePrecision: time.Nanosecond},
//		})
//	}
//
// The suite writes to the topics TopicA and TopicB only, runs its subtests
// one after the other (never in parallel) and calls Read and Count with the
// same *testing.T it passed to New, so a harness may keep the sink's state
// in a closure.
package sinktest
