package loadgen

import (
	"slices"
	"testing"
)

func acked(topic, key string, ids ...string) []Acked {
	out := make([]Acked, len(ids))
	for i, id := range ids {
		out[i] = Acked{ID: id, Topic: topic, Key: key, N: int64(i + 1)}
	}
	return out
}

func deliveries(ids ...string) []Delivered {
	out := make([]Delivered, len(ids))
	for i, id := range ids {
		out[i] = Delivered{ID: id, N: -1}
	}
	return out
}

func TestVerify(t *testing.T) {
	// Key a: a1..a5 pushed in order; key b: b1..b3; one keyless message.
	ack := append(acked("t", "a", "a1", "a2", "a3", "a4", "a5"), acked("t", "b", "b1", "b2", "b3")...)
	ack = append(ack, Acked{ID: "z", Topic: "t"})

	for _, tc := range []struct {
		name      string
		delivered []Delivered
		want      VerifyReport
	}{
		{
			name:      "all in order",
			delivered: deliveries("a1", "b1", "a2", "a3", "b2", "z", "a4", "b3", "a5"),
			want:      VerifyReport{Acked: 9, Delivered: 9, Unique: 9},
		},
		{
			name:      "lost",
			delivered: deliveries("a1", "a2", "a4", "b1", "b2", "b3", "z"),
			want:      VerifyReport{Acked: 9, Delivered: 7, Unique: 7, Lost: 2, LostIDs: []string{"a3", "a5"}},
		},
		{
			// A re-sent tail after a crash: a3..a5 come again. Only first
			// deliveries count for order, so this is not out of order.
			name:      "duplicates",
			delivered: deliveries("a1", "a2", "a3", "a4", "a5", "a3", "a4", "a5", "b1", "b2", "b3", "z", "z"),
			want: VerifyReport{Acked: 9, Delivered: 13, Unique: 9, Duplicates: 4,
				DuplicateIDs: []string{"a3", "a4", "a5", "z"}},
		},
		{
			// a2 overtakes a1; b3 before b1 and b2 (two behind); the keyless
			// message is not checked.
			name:      "out of order",
			delivered: deliveries("a2", "a1", "a3", "a4", "a5", "b3", "b1", "b2", "z"),
			want: VerifyReport{Acked: 9, Delivered: 9, Unique: 9, OutOfOrder: 3,
				OutOfOrderIDs: []string{"a1", "b1", "b2"}},
		},
		{
			// Not acknowledged (outcome unknown) but delivered: allowed,
			// and ignored by the order check.
			name:      "unexpected",
			delivered: deliveries("a1", "x1", "a2", "a3", "a4", "a5", "b1", "b2", "b3", "z", "x1"),
			want: VerifyReport{Acked: 9, Delivered: 11, Unique: 10, Unexpected: 1, Duplicates: 1,
				UnexpectedIDs: []string{"x1"}, DuplicateIDs: []string{"x1"}},
		},
		{
			name:      "nothing delivered",
			delivered: nil,
			want: VerifyReport{Acked: 9, Lost: 9,
				LostIDs: []string{"a1", "a2", "a3", "a4", "a5", "b1", "b2", "b3", "z"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Verify(ack, tc.delivered)
			if !equalReports(got, tc.want) {
				t.Errorf("Verify:\n got %+v\nwant %+v", got, tc.want)
			}
			if wantOK := tc.want.Lost == 0 && tc.want.OutOfOrder == 0; got.OK() != wantOK {
				t.Errorf("OK() = %v", got.OK())
			}
		})
	}
}

func equalReports(a, b VerifyReport) bool {
	return a.Acked == b.Acked && a.Delivered == b.Delivered && a.Unique == b.Unique &&
		a.Lost == b.Lost && a.Duplicates == b.Duplicates && a.OutOfOrder == b.OutOfOrder &&
		a.Unexpected == b.Unexpected && slices.Equal(a.LostIDs, b.LostIDs) &&
		slices.Equal(a.DuplicateIDs, b.DuplicateIDs) && slices.Equal(a.OutOfOrderIDs, b.OutOfOrderIDs) &&
		slices.Equal(a.UnexpectedIDs, b.UnexpectedIDs)
}

// The same key in two topics is two keys: order is per topic and key.
func TestVerifyKeyPerTopic(t *testing.T) {
	ack := append(acked("t1", "k", "p1", "p2"), acked("t2", "k", "q1", "q2")...)
	if v := Verify(ack, deliveries("q1", "q2", "p1", "p2")); v.OutOfOrder != 0 || !v.OK() {
		t.Errorf("%+v", v)
	}
}

func TestVerifySamplesBounded(t *testing.T) {
	var ack []Acked
	for i := range 100 {
		ack = append(ack, Acked{ID: string(rune('A' + i)), Topic: "t", Key: "k", N: int64(i)})
	}
	v := Verify(ack, nil)
	if v.Lost != 100 || len(v.LostIDs) != SampleIDs {
		t.Errorf("lost %d with %d samples", v.Lost, len(v.LostIDs))
	}
}

func TestFilterRun(t *testing.T) {
	ds := []Delivered{{ID: "1", Run: "r1"}, {ID: "2", Run: "r2"}, {ID: "3", Run: "r1"}, {ID: "4"}}
	got := FilterRun(ds, "r1")
	if len(got) != 2 || got[0].ID != "1" || got[1].ID != "3" {
		t.Errorf("FilterRun = %+v", got)
	}
}

func TestValueFormat(t *testing.T) {
	for _, size := range []int{0, 10, 45, 200, 4096} {
		v := appendValue(nil, "run-1", "k7", 123, size)
		if size > 60 && len(v) != size {
			t.Errorf("size %d: value has %d bytes", size, len(v))
		}
		f, ok := ParseValue(v)
		if !ok || f != (ValueFields{Run: "run-1", Key: "k7", N: 123}) {
			t.Errorf("ParseValue(%s) = %+v, %v", v, f, ok)
		}
		// json mode: the same text as a JSON string.
		q := appendJSONString(nil, v)
		if f, ok := ParseValue(q); !ok || f.N != 123 {
			t.Errorf("ParseValue(%s) = %+v, %v", q, f, ok)
		}
	}
	for _, bad := range []string{"", "hello", `{"run":"r"}`, `"not an object"`, `[1]`, `{"run":1,"key":"k","n":1}`} {
		if _, ok := ParseValue([]byte(bad)); ok {
			t.Errorf("ParseValue(%s) ok", bad)
		}
	}
}
