package spool

import (
	"math/bits"
	"sync"
)

// Batch buffers are recycled: a push of n bytes would otherwise allocate n
// bytes that the commit goroutine copies into tidwall/wal's batch at once
// and the GC then collects. Pools by power-of-two capacity, 4 KiB to
// 16 MiB; larger buffers come and go with the GC.
const (
	minBufShift = 12
	bufClasses  = 13 // 4 KiB << 12 = 16 MiB
)

var bufPools [bufClasses]sync.Pool // class k: capacity at least 4 KiB << k

// getBuf returns an empty slice with capacity at least n.
func getBuf(n int) []byte {
	k := 0
	if n > 1<<minBufShift {
		k = bits.Len(uint(n-1)) - minBufShift // smallest k with 4 KiB << k >= n
	}
	if k >= bufClasses {
		return make([]byte, 0, n)
	}
	if b, ok := bufPools[k].Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, 1<<(minBufShift+k))
}

// putBuf gives b back for reuse; nothing may use it afterwards.
func putBuf(b []byte) {
	c := cap(b)
	if c < 1<<minBufShift {
		return
	}
	k := bits.Len(uint(c)) - 1 - minBufShift // largest k with 4 KiB << k <= c
	if k >= bufClasses {
		return
	}
	bufPools[k].Put(&b)
}
