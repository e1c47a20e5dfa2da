package engine

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/containerd/console"
	"golang.org/x/sys/unix"
)

// berth attach talks to a container's monitor over a unix socket, in
// frames of [type][length, 4 bytes big-endian][payload].
const (
	frameStdin  byte = 0 // client -> monitor
	frameStdout byte = 1 // monitor -> client
	frameStderr byte = 2
	frameResize byte = 3 // client -> monitor: "ROWS COLS"
	frameExit   byte = 4 // monitor -> client: the exit status, decimal
	maxFrame         = 1 << 20
)

// attachDir holds the monitors' sockets: short paths (a socket path has
// at most 107 bytes), root's alone.
var attachDir = "/run/berth/attach"

func attachSocket(id string) string { return filepath.Join(attachDir, id+".sock") }

func writeFrame(w io.Writer, t byte, p []byte) error {
	hdr := [5]byte{t}
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(p)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(p)
	return err
}

func readFrame(r *bufio.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("attach: frame of %d bytes", n)
	}
	p := make([]byte, n)
	_, err := io.ReadFull(r, p)
	return hdr[0], p, err
}

// hub is a monitor's side of berth attach: it sends the container's
// output to every attached client, and their input to the container.
type hub struct {
	l       *net.UnixListener
	path    string
	mu      sync.Mutex
	closed  bool
	clients map[net.Conn]chan []byte // frames queued for each client
	input   io.Writer                // the container's stdin (-i), or nil
	master  *os.File                 // its pty (-t), for window sizes
}

// newHub listens for clients of container id; nil if it cannot (attach
// is then refused, the container runs as ever).
func newHub(id string) *hub {
	if err := os.MkdirAll(attachDir, 0o700); err != nil {
		return nil
	}
	p := attachSocket(id)
	os.Remove(p)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
	if err != nil {
		return nil
	}
	os.Chmod(p, 0o600)
	h := &hub{l: l, path: p, clients: map[net.Conn]chan []byte{}}
	go h.accept()
	return h
}

func (h *hub) accept() {
	for {
		conn, err := h.l.Accept()
		if err != nil {
			return
		}
		q := make(chan []byte, 256)
		h.mu.Lock()
		if h.closed {
			h.mu.Unlock()
			conn.Close()
			return
		}
		h.clients[conn] = q
		h.mu.Unlock()
		go h.send(conn, q)
		go h.serve(conn)
	}
}

// send writes a client's queued frames; the container never waits on a
// client (see hubWriter.Write).
func (h *hub) send(conn net.Conn, q chan []byte) {
	for f := range q {
		if _, err := conn.Write(f); err != nil {
			h.drop(conn)
			for range q {
			}
			return
		}
	}
	conn.Close()
}

// serve reads a client's input and window sizes until it goes.
func (h *hub) serve(conn net.Conn) {
	defer h.drop(conn)
	br := bufio.NewReader(conn)
	for {
		t, p, err := readFrame(br)
		if err != nil {
			return
		}
		h.mu.Lock()
		in, master := h.input, h.master
		h.mu.Unlock()
		switch t {
		case frameStdin:
			if in != nil {
				in.Write(p)
			}
		case frameResize:
			var rows, cols uint16
			if _, err := fmt.Sscan(string(p), &rows, &cols); err == nil && master != nil && rows > 0 {
				unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
			}
		}
	}
}

// drop forgets a client: its queue ends, then its connection.
func (h *hub) drop(conn net.Conn) {
	h.mu.Lock()
	q, ok := h.clients[conn]
	delete(h.clients, conn)
	h.mu.Unlock()
	if ok {
		close(q)
	}
}

// broadcast queues one frame for every client; one whose queue is full
// (it stopped reading) is dropped rather than waited for.
func (h *hub) broadcast(t byte, p []byte) {
	var buf bytes.Buffer
	writeFrame(&buf, t, p)
	f := buf.Bytes()
	h.mu.Lock()
	var slow []net.Conn
	for c, q := range h.clients {
		select {
		case q <- f:
		default:
			slow = append(slow, c)
		}
	}
	h.mu.Unlock()
	for _, c := range slow {
		h.drop(c)
		c.Close()
	}
}

// setInput wires the container's stdin and pty once it has them.
func (h *hub) setInput(in io.Writer, master *os.File) {
	if h == nil {
		return
	}
	h.mu.Lock()
	h.input, h.master = in, master
	h.mu.Unlock()
}

type hubWriter struct {
	h *hub
	t byte
}

// writer is the container's stream t as the clients get it.
func (h *hub) writer(t byte) io.Writer {
	if h == nil {
		return nil
	}
	return hubWriter{h, t}
}

func (w hubWriter) Write(p []byte) (int, error) {
	w.h.broadcast(w.t, p)
	return len(p), nil
}

// exit tells every client the container's exit status (the record may be
// gone by the time they look: --rm).
func (h *hub) exit(code int) {
	if h != nil {
		h.broadcast(frameExit, []byte(strconv.Itoa(code)))
	}
}

// close ends every attachment once their queues are written.
func (h *hub) close() {
	if h == nil {
		return
	}
	h.mu.Lock()
	h.closed = true
	clients := h.clients
	h.clients = map[net.Conn]chan []byte{}
	h.mu.Unlock()
	h.l.Close()
	os.Remove(h.path)
	for _, q := range clients {
		close(q) // its sender closes the connection when done
	}
}

// AttachOptions are berth attach's flags.
type AttachOptions struct {
	NoStdin  bool // do not send our stdin
	SigProxy bool // pass SIGINT and SIGTERM to the container
}

// ErrDetached is Attach's return when the user typed the detach keys
// (^P ^Q): the container runs on.
var ErrDetached = errors.New("detached")

// AttachTo connects a's stdio to the running container ref (docker
// attach): its output from now on, our input if it was started with -i.
// It returns the container's exit status once it exits.
func (e *Engine) AttachTo(ref string, o AttachOptions, a Attach) (int, error) {
	c, err := e.Lookup(ref)
	if err != nil {
		return 125, err
	}
	if !c.State.Running {
		return 125, fmt.Errorf("container %s is not running", c.Name)
	}
	conn, err := net.Dial("unix", attachSocket(c.ID))
	if err != nil {
		// A foreground berth run has the container's stdio itself.
		return 125, fmt.Errorf("container %s: cannot attach (only a container started with -d or start has a monitor to attach to): %v", c.Name, err)
	}
	defer conn.Close()
	var wmu sync.Mutex
	send := func(t byte, p []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		return writeFrame(conn, t, p)
	}
	detached := make(chan struct{})
	if c.Opts.Tty && a.Stdin != nil {
		if con, err := console.ConsoleFromFile(a.Stdin); err == nil {
			if c.Opts.Interactive && !o.NoStdin {
				con.SetRaw()
				defer con.Reset()
			}
			resize := func() {
				if sz, err := con.Size(); err == nil && sz.Height > 0 {
					send(frameResize, []byte(strconv.Itoa(int(sz.Height))+" "+strconv.Itoa(int(sz.Width))))
				}
			}
			resize()
			winch := make(chan os.Signal, 1)
			signal.Notify(winch, unix.SIGWINCH)
			defer signal.Stop(winch)
			go func() {
				for range winch {
					resize()
				}
			}()
		}
	}
	if c.Opts.Interactive && !o.NoStdin && a.Stdin != nil {
		go func() {
			buf := make([]byte, 32<<10)
			prev := byte(0)
			for {
				n, err := a.Stdin.Read(buf)
				if n > 0 {
					p := buf[:n]
					if c.Opts.Tty {
						// ^P ^Q leaves the container running, as in docker.
						for i, b := range p {
							if prev == 0x10 && b == 0x11 {
								send(frameStdin, p[:max(i-1, 0)])
								close(detached)
								conn.Close()
								return
							}
							prev = b
						}
					}
					if send(frameStdin, p) != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
	if o.SigProxy && !c.Opts.Tty {
		sigs := make(chan os.Signal, 4)
		signal.Notify(sigs, unix.SIGINT, unix.SIGTERM)
		defer signal.Stop(sigs)
		go func() {
			for s := range sigs {
				e.Kill(c.ID, s.(unix.Signal))
			}
		}()
	}
	br := bufio.NewReader(conn)
	exitCode := -1
	for {
		t, p, err := readFrame(br)
		if err != nil {
			break
		}
		switch t {
		case frameStdout:
			a.Stdout.Write(p)
		case frameStderr:
			a.Stderr.Write(p)
		case frameExit:
			exitCode, _ = strconv.Atoi(string(p))
		}
	}
	select {
	case <-detached:
		return 0, ErrDetached
	default:
	}
	if exitCode >= 0 {
		return exitCode, nil
	}
	return e.Wait(c.ID)
}
