package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
)

// callbackGuard decides which callback URLs sluice may call (SSRF guard).
//
// The rule, applied at push time to the URL and again at dial time to the
// address actually dialled:
//   - scheme http or https, no user info;
//   - a host written as an IP must be a plain dotted-quad IPv4 or an IPv6
//     literal (Go's strict parser): "0x7f.1", "2130706433", "127.1" and
//     other spellings that some resolvers read as an address are refused,
//     and so is an IPv4-mapped IPv6 literal such as [::ffff:127.0.0.1];
//   - by default only loopback is allowed: loopback IPs and "localhost",
//     which must then resolve to loopback only;
//   - SLUICE_CALLBACK_ALLOW widens it with CIDRs (allowing those addresses)
//     and host globs (allowing those names, which may resolve to any
//     unicast address except link-local ones such as the cloud metadata
//     endpoint 169.254.169.254);
//   - names are resolved by sluice itself and the checked address is the
//     one dialled, so a name cannot change its answer between check and
//     connect; redirects are not followed;
//   - sluice's own listeners (ingest and admin) are never a target, in any
//     spelling: any loopback address at a bound port, and when a listener
//     is bound to all interfaces (0.0.0.0, ::) also every address of this
//     host at that port. Push time refuses what it can see (IP literals,
//     localhost); dial time checks every address actually dialled. A unix
//     socket listener cannot be reached: callbacks only dial TCP.
type callbackGuard struct {
	cidrs   []*net.IPNet
	globs   []string
	resolve func(ctx context.Context, host string) ([]net.IP, error)

	mu       sync.RWMutex
	self     []*net.TCPAddr // the agent's own TCP listeners
	localIPs []net.IP       // this host's addresses, when a listener is unspecified
}

// setSelf records the agent's bound listeners (nil and non-TCP addresses
// are skipped).
func (g *callbackGuard) setSelf(addrs ...net.Addr) {
	var self []*net.TCPAddr
	wild := false
	for _, a := range addrs {
		if t, ok := a.(*net.TCPAddr); ok && t != nil {
			self = append(self, t)
			wild = wild || t.IP == nil || t.IP.IsUnspecified()
		}
	}
	var local []net.IP
	if wild {
		if ifAddrs, err := net.InterfaceAddrs(); err == nil {
			for _, ia := range ifAddrs {
				if n, ok := ia.(*net.IPNet); ok {
					local = append(local, n.IP)
				}
			}
		}
	}
	g.mu.Lock()
	g.self, g.localIPs = self, local
	g.mu.Unlock()
}

// isSelf reports whether ip:port reaches one of the agent's listeners.
func (g *callbackGuard) isSelf(ip net.IP, port int) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	for _, s := range g.self {
		if s.Port != port {
			continue
		}
		if ip.IsLoopback() || ip.IsUnspecified() || ip.Equal(s.IP) {
			return true
		}
		if s.IP == nil || s.IP.IsUnspecified() {
			for _, l := range g.localIPs {
				if ip.Equal(l) {
					return true
				}
			}
		}
	}
	return false
}

var errCallbackSelf = errors.New("callback target is one of sluice's own listeners")

var errCallbackNotAllowed = errors.New("callback target not allowed")

func newCallbackGuard(allow []string) (*callbackGuard, error) {
	g := &callbackGuard{resolve: func(ctx context.Context, host string) ([]net.IP, error) {
		addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		ips := make([]net.IP, 0, len(addrs))
		for _, a := range addrs {
			ips = append(ips, a.IP)
		}
		return ips, err
	}}
	for _, a := range allow {
		a = strings.TrimSpace(a)
		switch {
		case a == "":
		case strings.Contains(a, "/"):
			_, n, err := net.ParseCIDR(a)
			if err != nil {
				return nil, fmt.Errorf("callback allow %q: %w", a, err)
			}
			g.cidrs = append(g.cidrs, n)
		case net.ParseIP(a) != nil:
			ip := net.ParseIP(a)
			bits := 128
			if ip.To4() != nil {
				ip, bits = ip.To4(), 32
			}
			g.cidrs = append(g.cidrs, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
		default:
			if _, err := path.Match(a, ""); err != nil {
				return nil, fmt.Errorf("callback allow %q: %w", a, err)
			}
			g.globs = append(g.globs, strings.ToLower(a))
		}
	}
	return g, nil
}

// hostKind classifies a URL host.
type hostKind int

const (
	hostRefused hostKind = iota
	hostIP               // an IP literal, allowed
	hostLocal            // "localhost": must resolve to loopback
	hostGlob             // allowed by a host glob
)

func (g *callbackGuard) allowedIP(ip net.IP) bool {
	if ip == nil || ip.IsUnspecified() {
		return false
	}
	if ip.IsLoopback() {
		return true
	}
	for _, n := range g.cidrs {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

func (g *callbackGuard) classify(host string) (hostKind, net.IP) {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "" {
		return hostRefused, nil
	}
	if ip := net.ParseIP(host); ip != nil {
		if strings.Contains(host, ":") && ip.To4() != nil {
			return hostRefused, nil // IPv4-mapped IPv6: ambiguous
		}
		if g.allowedIP(ip) {
			return hostIP, ip
		}
		return hostRefused, nil
	}
	if looksNumeric(host) {
		return hostRefused, nil // an address in disguise
	}
	if host == "localhost" {
		return hostLocal, nil
	}
	for _, gl := range g.globs {
		if ok, _ := path.Match(gl, host); ok {
			return hostGlob, nil
		}
	}
	return hostRefused, nil
}

// looksNumeric: hosts made of digits, dots and hex prefixes ("0x7f.1",
// "2130706433", "127.1") that inet_aton would read as an address.
func looksNumeric(h string) bool {
	last := h[strings.LastIndexByte(h, '.')+1:]
	if last == "" {
		return false
	}
	for _, c := range last {
		if !(c >= '0' && c <= '9' || c == 'x' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return last[0] >= '0' && last[0] <= '9'
}

// checkURL is the push-time check.
func (g *callbackGuard) checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Opaque != "" {
		return fmt.Errorf("%w: need an http or https URL without credentials", errCallbackNotAllowed)
	}
	k, ip := g.classify(u.Hostname())
	if k == hostRefused {
		return fmt.Errorf("%w: %s (loopback only unless SLUICE_CALLBACK_ALLOW allows it)", errCallbackNotAllowed, u.Hostname())
	}
	if k == hostLocal {
		ip = net.IPv4(127, 0, 0, 1)
	}
	if ip != nil && g.isSelf(ip, urlPort(u)) {
		return fmt.Errorf("%w: %w (%s)", errCallbackNotAllowed, errCallbackSelf, u.Host)
	}
	return nil
}

// urlPort is the port a URL dials (its scheme's default when absent).
func urlPort(u *url.URL) int {
	if p, err := strconv.Atoi(u.Port()); err == nil {
		return p
	}
	if u.Scheme == "https" {
		return 443
	}
	return 80
}

// dial resolves and checks the address, then dials the checked IP.
func (g *callbackGuard) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if network != "tcp" && network != "tcp4" && network != "tcp6" {
		return nil, fmt.Errorf("%w: network %s", errCallbackNotAllowed, network)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	portNum, err := strconv.Atoi(port)
	if err != nil {
		return nil, fmt.Errorf("%w: port %q", errCallbackNotAllowed, port)
	}
	kind, ip := g.classify(host)
	var ips []net.IP
	switch kind {
	case hostRefused:
		return nil, fmt.Errorf("%w: %s", errCallbackNotAllowed, host)
	case hostIP:
		ips = []net.IP{ip}
	default:
		resolved, err := g.resolve(ctx, host)
		if err != nil {
			return nil, err
		}
		for _, r := range resolved {
			ok := r.IsLoopback()
			if kind == hostGlob {
				ok = g.allowedIP(r) || (!r.IsUnspecified() && !r.IsLinkLocalUnicast() && !r.IsLinkLocalMulticast() && !r.IsMulticast())
			}
			if !ok {
				return nil, fmt.Errorf("%w: %s resolves to %s", errCallbackNotAllowed, host, r)
			}
			ips = append(ips, r)
		}
	}
	var d net.Dialer
	var last error = fmt.Errorf("%w: %s has no address", errCallbackNotAllowed, host)
	for _, ip := range ips {
		if g.isSelf(ip, portNum) {
			return nil, fmt.Errorf("%w: %w (%s)", errCallbackNotAllowed, errCallbackSelf, net.JoinHostPort(ip.String(), port))
		}
	}
	for _, ip := range ips {
		c, err := d.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
		if err == nil {
			return c, nil
		}
		last = err
	}
	return nil, last
}
