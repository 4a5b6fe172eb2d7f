package kafkaproto

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluiceio/sluice/agent"
)

// Options configure a Server. Zero values mean the defaults noted.
type Options struct {
	// Addr is the host:port to listen on. Required.
	Addr string
	// StateDir holds the producer id state file. Required; cmd passes a
	// directory inside the spool directory (locked by the spool).
	StateDir string

	// Partitions is the partition count advertised for each named topic;
	// its messages are forwarded to the partition the producer chose.
	Partitions map[string]int32
	// DefaultPartitions is the count advertised for other topics. 0
	// (default): mirrored from upstream when Mirror is set, else one
	// partition whose messages are forwarded without an explicit
	// partition: the sink's partitioner places them (murmur2 by key for
	// Kafka, as the Java client would).
	DefaultPartitions int32
	// Mirror advertises, for topics in neither Partitions nor covered by
	// DefaultPartitions, the partition count of the topic upstream
	// (agent.Acceptor.Partitions), cached in StateDir and refreshed after
	// MirrorTTL (default 1 min); a topic never seen while upstream is down
	// gets LEADER_NOT_AVAILABLE (retriable). Topics whose sinks have no
	// partitions fall back to one partition.
	Mirror    bool
	MirrorTTL time.Duration

	// MaxRequestBytes is the largest record batch, decompressed (a larger
	// one gets MESSAGE_TOO_LARGE), and the most message bytes of one
	// request spooled in one Accept; default 16 MiB.
	MaxRequestBytes int
	// MaxProduceBytes is the largest Produce request frame (a larger one
	// closes the connection); default 100 MiB, at least MaxRequestBytes:
	// Kafka's socket.request.max.bytes, up to which franz-go and Sarama
	// pack batches of many partitions into one request.
	MaxProduceBytes int
	// MaxInflightBytes bounds the request bytes all connections hold at
	// once (a connection waits before reading a frame that does not fit;
	// a frame larger than all of it waits until it is alone), and apart
	// from them the decoded batches of Produce requests (produceRun);
	// default 64 MiB.
	MaxInflightBytes int64
	MaxConnections   int // default 256
	MaxProducers     int // idempotent producers remembered; default 10000
	// ProducerStateAge is how far back Serve reads the spool to rebuild
	// the idempotent producers' sequence windows after a restart; default
	// 10 min (a producer retrying across a restart comes back sooner).
	ProducerStateAge time.Duration
	IdleTimeout      time.Duration // an idle connection is closed after this; default 10 min
	WriteTimeout     time.Duration // bound on writing a response; default 10 s
	// ReadTimeout bounds reading one request once its size arrived (a slow
	// peer cannot hold the in-flight budget); default 10 s.
	ReadTimeout time.Duration
	// ThrottleMillis is the throttle time sent with a retriable
	// "spool full" error; default 1000.
	ThrottleMillis int32

	// Token, when set, is the password every connection must present
	// with SASL/PLAIN (any user name) before anything but ApiVersions
	// (sasl.go). Empty: no authentication.
	Token string

	Logger  *slog.Logger
	Metrics *metrics.Set // default: a new set
}

// Requests other than Produce are small. kmsg allocates a request's arrays
// before it reads their elements, so a hostile frame can claim as many
// elements as it has bytes left, each decoded into a struct of up to a few
// hundred bytes (measured: a Fetch v4 frame built so allocates 137 times
// its size, 275 under the race detector; a Metadata v4 frame 49 and 82).
// Such frames are held to a size (Metadata, which may name many topics, to
// maxControlBytes; the others to maxSmallControlBytes) and charged to the
// in-flight budget at controlExpansion times their size, with room for the
// request versions not measured.
const (
	maxControlBytes      = 256 << 10
	maxSmallControlBytes = 16 << 10
	controlExpansion     = 1024
)

func (o *Options) setDefaults() {
	if o.MaxRequestBytes <= 0 {
		o.MaxRequestBytes = 16 << 20
	}
	if o.MaxProduceBytes <= 0 {
		o.MaxProduceBytes = 100 << 20
	}
	o.MaxProduceBytes = max(o.MaxProduceBytes, o.MaxRequestBytes)
	if o.MaxInflightBytes <= 0 {
		o.MaxInflightBytes = 64 << 20
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = 256
	}
	if o.MaxProducers <= 0 {
		o.MaxProducers = 10000
	}
	if o.MirrorTTL <= 0 {
		o.MirrorTTL = time.Minute
	}
	if o.ProducerStateAge <= 0 {
		o.ProducerStateAge = 10 * time.Minute
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 10 * time.Minute
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = 10 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.ThrottleMillis <= 0 {
		o.ThrottleMillis = 1000
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = metrics.NewSet()
	}
}

// Server is the Kafka-protocol produce listener: an agent.FrontEnd.
type Server struct {
	opts Options
	log  *slog.Logger
	ln   net.Listener
	pids *producers
	mir  *mirror
	dec  *decompressor
	mem  *budget // request frames
	// decoded bounds the decoded batches of Produce requests (produceRun).
	decoded *budget
	m       *serverMetrics
	acc     agent.Acceptor

	mu        sync.Mutex
	conns     map[net.Conn]struct{}
	closed    bool
	closeOnce sync.Once
}

var _ agent.FrontEnd = (*Server)(nil)

// Errors of Listen.
var (
	ErrNoAddr     = errors.New("kafkaproto: Options.Addr is required")
	ErrNoStateDir = errors.New("kafkaproto: Options.StateDir is required")
)

// Listen binds o.Addr and loads the producer id state; nothing is served
// until Serve. Close releases what Listen took when Serve is never called.
func Listen(o Options) (*Server, error) {
	o.setDefaults()
	switch {
	case o.Addr == "":
		return nil, ErrNoAddr
	case o.StateDir == "":
		return nil, ErrNoStateDir
	}
	pids, err := openProducers(o.StateDir, o.MaxProducers)
	if err != nil {
		return nil, err
	}
	dec, err := newDecompressor(o.MaxRequestBytes)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		dec.close()
		return nil, fmt.Errorf("kafkaproto: listen: %w", err)
	}
	return &Server{opts: o, log: o.Logger, ln: ln, pids: pids, dec: dec, m: newServerMetrics(o.Metrics),
		mir: openMirror(o.StateDir, o.MirrorTTL, 2*time.Second), mem: newBudget(o.MaxInflightBytes),
		decoded: newBudget(o.MaxInflightBytes), conns: map[net.Conn]struct{}{}}, nil
}

// Name implements agent.FrontEnd.
func (s *Server) Name() string { return "kafka" }

// Addr implements agent.FrontEnd: the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops listening and closes every connection. Idempotent.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		err = s.ln.Close()
		s.mem.close()
		s.decoded.close()
		s.mu.Lock()
		s.closed = true
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
	})
	return err
}

// Serve implements agent.FrontEnd: it serves connections until ctx is
// done, then closes the listener and the connections and waits for the
// requests in flight (each bounded by the spool's append timeout).
func (s *Server) Serve(ctx context.Context, acc agent.Acceptor) error {
	s.acc = acc
	// Connections wait in the listen backlog until the windows are back.
	t0 := time.Now()
	n, err := s.pids.rebuild(acc, t0.Add(-s.opts.ProducerStateAge))
	if err != nil {
		s.Close()
		s.dec.close()
		return fmt.Errorf("kafkaproto: rebuild producer state: %w", err)
	}
	if n > 0 {
		s.log.Info("kafka listener: idempotent producer state rebuilt from the spool", "batches", n, "took", time.Since(t0).Round(time.Millisecond))
	}
	var wg sync.WaitGroup
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	for {
		c, aerr := s.ln.Accept()
		if aerr != nil {
			if ctx.Err() == nil && !s.isClosed() {
				var ne net.Error
				if errors.As(aerr, &ne) && ne.Timeout() {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				err = fmt.Errorf("kafkaproto: accept: %w", aerr)
			}
			break
		}
		if !s.track(c) {
			s.m.refused.Inc()
			c.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.untrack(c)
			s.serveConn(c)
		}()
	}
	s.Close()
	wg.Wait()
	s.dec.close()
	return err
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// track registers a connection, refusing it over MaxConnections or after
// Close.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || len(s.conns) >= s.opts.MaxConnections {
		return false
	}
	s.conns[c] = struct{}{}
	s.m.conns.Add(1)
	return true
}

func (s *Server) untrack(c net.Conn) {
	c.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.m.conns.Add(-1)
}

// serveConn reads requests one at a time and answers each before reading
// the next: responses leave in request order, as Kafka requires. Any
// malformed frame, unknown API or unsupported version closes the
// connection (what a broker does).
func (s *Server) serveConn(c net.Conn) {
	var sizeBuf [4]byte
	var buf []byte
	st := session{authed: s.opts.Token == ""}
	// A connection that has not authenticated gets ReadTimeout from its
	// start to do so, not IdleTimeout: quiet unauthenticated connections
	// would otherwise hold MaxConnections against producers with the token.
	authBy := time.Now().Add(s.opts.ReadTimeout)
	for {
		if st.authed {
			_ = c.SetReadDeadline(time.Now().Add(s.opts.IdleTimeout))
		} else {
			_ = c.SetReadDeadline(authBy)
		}
		if _, err := io.ReadFull(c, sizeBuf[:]); err != nil {
			return
		}
		if st.authed {
			_ = c.SetReadDeadline(time.Now().Add(s.opts.ReadTimeout))
		}
		size := int(binary.BigEndian.Uint32(sizeBuf[:]))
		if st.rawPlain {
			if !s.rawPlain(c, &st, size) {
				return
			}
			continue
		}
		if size < 8 || size > s.opts.MaxProduceBytes {
			s.closeBad(c, fmt.Errorf("frame of %d bytes", int32(size)))
			return
		}
		if !st.authed && size > maxSmallControlBytes {
			// Only small requests are allowed before authentication.
			s.closeBad(c, fmt.Errorf("frame of %d bytes before SASL authentication", size))
			return
		}
		// Read the key first: only Produce may be large.
		if cap(buf) < 4 {
			buf = make([]byte, 0, 4096)
		}
		head := buf[:4]
		if _, err := io.ReadFull(c, head); err != nil {
			return
		}
		key, cost := binary.BigEndian.Uint16(head), int64(size)
		switch {
		case !st.authed && !preAuth(int16(key)):
			s.closeBad(c, fmt.Errorf("request key %d: %w", key, errUnauthenticated))
			return
		case !st.authed:
			// Not charged to the budget producers share, or peers
			// without the token could hold it all (a frame's charge is
			// taken before its body arrives). Such a frame is at most
			// maxSmallControlBytes, one per connection, and is decoded as
			// soon as it is read (about 54 times its size, measured, for
			// a frame of nothing but tags).
			cost = 0
		case key != keyProduce:
			limit := maxSmallControlBytes
			if key == keyMetadata {
				limit = maxControlBytes
			}
			if size > limit {
				s.closeBad(c, fmt.Errorf("request key %d of %d bytes", key, size))
				return
			}
			cost *= controlExpansion
		}
		if cost > 0 && !s.mem.acquire(cost) {
			return
		}
		// Waiting for the budget is not the peer's slowness (but does not
		// extend the time to authenticate).
		if st.authed {
			_ = c.SetReadDeadline(time.Now().Add(s.opts.ReadTimeout))
		}
		resp, h, err := s.serveFrame(c, &st, &buf, head, size)
		s.mem.release(cost)
		if cap(buf) > 1<<20 {
			buf = nil
		}
		if errors.Is(err, errAnswerThenClose) && resp != nil {
			_ = s.write(c, h, resp)
		}
		if err != nil {
			s.closeBad(c, err)
			return
		}
		if resp == nil { // acks=0 produce: no response
			continue
		}
		if err := s.write(c, h, resp); err != nil {
			return
		}
	}
}

// serveFrame reads the rest of a frame of size bytes (its first 4 in
// head) into *buf and handles it. A nil response with a nil error sends
// nothing (acks=0).
func (s *Server) serveFrame(c net.Conn, st *session, buf *[]byte, head []byte, size int) (response, header, error) {
	if cap(*buf) < size {
		if size <= 1<<20 {
			*buf = append((*buf)[:4], make([]byte, size-4)...)
		} else {
			b := make([]byte, size) // dropped after the request: idle connections hold no large buffer
			copy(b, head)
			*buf = b
		}
	}
	frame := (*buf)[:size]
	if _, err := io.ReadFull(c, frame[4:]); err != nil {
		return nil, header{}, err
	}
	h, body, err := parseHeader(frame)
	if err != nil {
		return nil, h, err
	}
	resp, err := s.handle(c, st, h, body)
	if err != nil {
		return resp, h, fmt.Errorf("%s v%d: %w", apiName(h.key), h.version, err)
	}
	return resp, h, nil
}

func (s *Server) closeBad(c net.Conn, err error) {
	s.m.badRequests.Inc()
	s.log.Debug("kafka listener: closing connection", "remote", c.RemoteAddr().String(), "err", err)
}

// write sends resp for the request of header h: size, correlation id, an
// empty tag section for flexible responses (never for ApiVersions, whose
// response header stays v0), then the body.
func (s *Server) write(c net.Conn, h header, resp response) error {
	out := make([]byte, 8, 256)
	if resp.IsFlexible() && h.key != keyApiVersions {
		out = append(out, 0)
	}
	out = resp.AppendTo(out)
	binary.BigEndian.PutUint32(out, uint32(len(out)-4))
	binary.BigEndian.PutUint32(out[4:], uint32(h.corr))
	_ = c.SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout))
	_, err := c.Write(out)
	return err
}
