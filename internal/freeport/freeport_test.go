package freeport

import (
	"net"
	"strconv"
	"testing"
)

func TestPortsAreDistinctAndFree(t *testing.T) {
	ports, err := Ports(5)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if seen[p] {
			t.Fatalf("port %d picked twice in %v", p, ports)
		}
		seen[p] = true
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("picked port %d cannot be bound: %v", p, err)
		}
		ln.Close()
	}
}

func TestTakenIsHandedOutFirstOnly(t *testing.T) {
	k := Take(t)
	if _, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(k.Port)); err == nil {
		t.Fatalf("port %d is not held", k.Port)
	}
	first, err := k.Ports(3)
	if err != nil {
		t.Fatal(err)
	}
	if first[0] != k.Port || first[1] == k.Port || first[2] == k.Port {
		t.Fatalf("first pick %v; the taken port is %d", first, k.Port)
	}
	if p := k.Pick(t); p == k.Port {
		t.Fatalf("second pick handed out the taken port %d again", p)
	}
	if a, err := k.Addr(); err != nil || a == "127.0.0.1:"+strconv.Itoa(k.Port) {
		t.Fatalf("third pick %q %v; the taken port is %d", a, err, k.Port)
	}
	if k.Picks != 3 {
		t.Fatalf("%d picks counted, made 3", k.Picks)
	}
}
