package runtime

import (
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// recvConsole plays the receiving side of --console-socket the way
// containerd's shim does: accept, recvmsg, take the one SCM_RIGHTS fd.
func recvConsole(t *testing.T, l *net.UnixListener) (string, *os.File, error) {
	conn, err := l.AcceptUnix()
	if err != nil {
		return "", nil, err
	}
	defer conn.Close()
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return "", nil, err
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return "", nil, err
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		t.Errorf("got %d fds (%v), want 1", len(fds), err)
		return "", nil, err
	}
	return string(buf[:n]), os.NewFile(uintptr(fds[0]), "master"), nil
}

func TestSetupConsole(t *testing.T) {
	if _, err := os.Stat("/dev/ptmx"); err != nil {
		t.Skip("no /dev/ptmx")
	}
	sock := filepath.Join(t.TempDir(), "console.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type got struct {
		name   string
		master *os.File
		err    error
	}
	ch := make(chan got, 1)
	go func() {
		n, m, err := recvConsole(t, l)
		ch <- got{n, m, err}
	}()

	slave, err := setupConsole(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer slave.Close()
	var r got
	select {
	case r = <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("nothing arrived on the console socket")
	}
	if r.err != nil || r.master == nil {
		t.Fatalf("receiving master: %v", r.err)
	}
	defer r.master.Close()
	if r.name != consoleMasterName {
		t.Errorf("payload = %q, want %q as runc sends", r.name, consoleMasterName)
	}
	// The slave really is a terminal, and the fd received is its master.
	if _, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS); err != nil {
		t.Fatalf("slave is not a tty: %v", err)
	}
	if !strings.HasPrefix(slave.Name(), "/dev/pts/") {
		t.Errorf("slave name %q", slave.Name())
	}
	pn, err := unix.IoctlGetUint32(int(r.master.Fd()), unix.TIOCGPTN)
	if err != nil || "/dev/pts/"+strconv.Itoa(int(pn)) != slave.Name() {
		t.Fatalf("received fd is pts %d (%v), slave is %s", pn, err, slave.Name())
	}
	// Master -> slave: what the shim types reaches the container.
	if _, err := r.master.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	line := make([]byte, 64)
	slave.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := slave.Read(line)
	if err != nil || string(line[:n]) != "hello\n" {
		t.Fatalf("slave read %q, %v", line[:n], err)
	}
	// Slave -> master: what the container prints reaches the shim.
	if _, err := slave.Write([]byte("world\n")); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	r.master.SetReadDeadline(time.Now().Add(5 * time.Second))
	for !strings.Contains(out.String(), "world") {
		n, err := r.master.Read(line)
		out.Write(line[:n])
		if err != nil && err != io.EOF {
			t.Fatalf("master read %q: %v", out.String(), err)
		}
	}
	// Only one master was sent; ours is closed, so closing the received
	// one hangs up the slave.
	r.master.Close()
	slave.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := slave.Read(line); err == nil {
		t.Error("slave still readable after the only master closed")
	}
}

func TestSetupConsoleNoListener(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "missing.sock")
	_, err := setupConsole(sock)
	if err == nil || !strings.Contains(err.Error(), sock) {
		t.Fatalf("err = %v, want an error naming %s", err, sock)
	}
}
