// Package freeport picks loopback TCP ports for the servers that tests
// start.
//
// A port it returns was free when it was picked, not necessarily when the
// server binds it: another test's connection can take it in between, as
// its source port. So every start helper that uses it starts its server
// again on other ports when the bind fails, and Take lets a helper's test
// prove that it does.
package freeport

import (
	"fmt"
	"net"
	"testing"
)

// Ports returns n distinct loopback ports nothing listened on a moment ago.
func Ports(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		// Each listener stays open until all are picked, so the n ports
		// differ.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Port is one of Ports for a test; it fails t when no port can be had.
func Port(t testing.TB) int {
	t.Helper()
	ports, err := Ports(1)
	if err != nil {
		t.Fatal(err)
	}
	return ports[0]
}

// Addr is one of Ports as "127.0.0.1:port".
func Addr() (string, error) {
	ports, err := Ports(1)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("127.0.0.1:%d", ports[0]), nil
}

// Taken is a port a listener holds for the whole test. Its pickers,
// which stand in for Port, Ports and Addr, hand it out in their first
// pick and free ports in every later one.
type Taken struct {
	Port  int
	Picks int // calls of the pickers so far
}

// Take listens on a free port until t ends.
func Take(t testing.TB) *Taken {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return &Taken{Port: ln.Addr().(*net.TCPAddr).Port}
}

// Ports stands in for Ports: the first pick's first port is the taken one.
func (k *Taken) Ports(n int) ([]int, error) {
	ports, err := Ports(n)
	if k.Picks++; k.Picks == 1 && err == nil && n > 0 {
		ports[0] = k.Port
	}
	return ports, err
}

// Pick stands in for Port.
func (k *Taken) Pick(t testing.TB) int {
	t.Helper()
	ports, err := k.Ports(1)
	if err != nil {
		t.Fatal(err)
	}
	return ports[0]
}

// Addr stands in for Addr.
func (k *Taken) Addr() (string, error) {
	ports, err := k.Ports(1)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("127.0.0.1:%d", ports[0]), nil
}
