package runtime

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// streams a replica has, in this order.
var streamNames = [2]string{"stdout", "stderr"}

// replicaLogs captures a process replica's output. Each stream goes
// through a named pipe in DataDir/run/<replica>/ that both the replica
// and the runtime hold open read-write: the replica never gets EPIPE
// (so an agent restart does not kill it: it blocks once the pipe buffer
// is full, and the next agent run drains it), and the runtime's pump
// never sees EOF between restarts. The pump writes into size-capped,
// rotated files in DataDir/logs/<replica>/.
type replicaLogs struct {
	dir, runDir string
	streams     [2]*logStream
	closeOnce   sync.Once
}

type logStream struct {
	fifo   string
	reader *os.File // the runtime's end, non-blocking (on the poller)
	sink   *logFile
	done   chan struct{} // closed when the pump ends
}

// openLogs makes (or reopens, after an agent restart) a replica's pipes
// and log files, and starts their pumps.
func (r *Runtime) openLogs(fsname string) (*replicaLogs, error) {
	l := &replicaLogs{dir: filepath.Join(r.logDir, fsname), runDir: filepath.Join(r.runDir, fsname)}
	for _, d := range []string{l.dir, l.runDir} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("open replica logs: %w", err)
		}
	}
	for i, name := range streamNames {
		fifo := filepath.Join(l.runDir, name+".pipe")
		reader, err := openFifo(fifo, unix.O_NONBLOCK)
		if err != nil {
			for _, s := range l.streams[:i] {
				s.reader.Close()
				<-s.done
				s.sink.close()
			}
			return nil, fmt.Errorf("open replica logs: %w", err)
		}
		s := &logStream{
			fifo:   fifo,
			reader: reader,
			sink:   newLogFile(filepath.Join(l.dir, name+".log"), r.cfg.LogMaxBytes, r.cfg.LogMaxFiles, r.log.With("file", filepath.Join(l.dir, name+".log"))),
			done:   make(chan struct{}),
		}
		l.streams[i] = s
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			s.pump()
		}()
	}
	return l, nil
}

// openFifo makes path a named pipe when it is not one yet and opens it
// read-write (which never blocks, and keeps a reader on the pipe).
// Descriptors are close-on-exec: other replicas must not inherit them.
func openFifo(path string, flags int) (*os.File, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&fs.ModeNamedPipe == 0 {
		_ = os.Remove(path)
	}
	if err := unix.Mkfifo(path, 0o600); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("make pipe %s: %w", path, err)
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC|flags, 0)
	if err != nil {
		return nil, fmt.Errorf("open pipe %s: %w", path, err)
	}
	if flags&unix.O_NONBLOCK != 0 {
		// A bigger pipe buffer lets a replica write more while no agent
		// drains it (best effort: the system caps it). Set on the raw
		// descriptor: os.File.Fd would make it blocking.
		_, _ = unix.FcntlInt(uintptr(fd), unix.F_SETPIPE_SZ, 1<<20)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// childFiles opens the pipes for a new process's stdout and stderr, in
// blocking mode (a replica must not see EAGAIN on its output).
func (l *replicaLogs) childFiles() (stdout, stderr *os.File, err error) {
	if stdout, err = openFifo(l.streams[0].fifo, 0); err != nil {
		return nil, nil, err
	}
	if stderr, err = openFifo(l.streams[1].fifo, 0); err != nil {
		stdout.Close()
		return nil, nil, err
	}
	return stdout, stderr, nil
}

// pump copies the pipe into the log file until the reader is closed or
// its deadline passes.
func (s *logStream) pump() {
	defer close(s.done)
	buf := make([]byte, 32<<10)
	for {
		n, err := s.reader.Read(buf)
		if n > 0 {
			s.sink.Write(buf[:n])
		}
		if err != nil {
			return
		}
	}
}

// close ends the pumps, after letting them drain the pipes for up to
// drain, and closes the log files (followers then end).
func (l *replicaLogs) close(drain time.Duration) {
	l.closeOnce.Do(func() {
		for _, s := range l.streams {
			if drain > 0 {
				_ = s.reader.SetReadDeadline(time.Now().Add(drain))
			} else {
				s.reader.Close()
			}
		}
		for _, s := range l.streams {
			<-s.done
			s.reader.Close()
			s.sink.close()
		}
	})
}

// markRun marks the start of a new run of the replica's process in both
// streams. The last run's process has exited by then, and the pumps read
// its pipes as soon as it wrote, so its output comes before the mark.
func (l *replicaLogs) markRun(now time.Time) {
	for _, s := range l.streams {
		s.sink.markRun(now)
	}
}

func (l *replicaLogs) dropped() int64 {
	return l.streams[0].sink.dropped.Load() + l.streams[1].sink.dropped.Load()
}

// logFile is a size-capped log file with rotation: path, path.1 (newer)
// ... path.<keep-1> (oldest). A write that fails (a full disk) is dropped
// and counted; the replica never notices.
type logFile struct {
	path    string
	max     int64
	keep    int
	log     interface{ Warn(string, ...any) }
	dropped atomic.Int64

	mu      sync.Mutex
	f       *os.File
	size    int64
	failing bool
	lost    int64 // bytes dropped since writes started failing
	closed  bool
	midLine bool          // the last byte written was not a newline
	runs    int           // run markers written since this logFile was made
	notify  chan struct{} // closed and replaced after each write, rotation and close
}

func newLogFile(path string, maxBytes int64, keep int, log interface{ Warn(string, ...any) }) *logFile {
	l := &logFile{path: path, max: maxBytes, keep: max(keep, 1), log: log, notify: make(chan struct{})}
	l.mu.Lock()
	if l.openLocked() == nil && l.size > 0 {
		// Reopened after an agent restart: does the file end mid-line?
		var last [1]byte
		if _, err := l.f.ReadAt(last[:], l.size-1); err == nil {
			l.midLine = last[0] != '\n'
		}
	}
	l.mu.Unlock()
	return l
}

func (l *logFile) openLocked() error {
	f, err := os.OpenFile(l.path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	l.f, l.size = f, fi.Size()
	return nil
}

// rotateLocked shifts path -> path.1 -> ... and starts an empty path.
func (l *logFile) rotateLocked() error {
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
	if l.keep == 1 {
		if err := os.Remove(l.path); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	for i := l.keep - 1; i >= 1; i-- {
		src := l.path
		if i > 1 {
			src = fmt.Sprintf("%s.%d", l.path, i-1)
		}
		if err := os.Rename(src, fmt.Sprintf("%s.%d", l.path, i)); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	l.wakeLocked()
	return l.openLocked()
}

func (l *logFile) wakeLocked() {
	close(l.notify)
	l.notify = make(chan struct{})
}

// Write appends the output p, each line's start stamped with the time
// now, rotating at the cap. It never fails: what cannot be written is
// dropped and counted.
func (l *logFile) Write(p []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || len(p) == 0 {
		return
	}
	l.writeLocked(l.frameLocked(p, time.Now()))
}

// frameLocked stamps the start of each line of p.
func (l *logFile) frameLocked(p []byte, now time.Time) []byte {
	prefix := stamp(now, tagLine)
	out := make([]byte, 0, len(p)+len(prefix)*(1+bytes.Count(p, []byte{'\n'})))
	for len(p) > 0 {
		if !l.midLine {
			out = append(out, prefix...)
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			out = append(out, p...)
			l.midLine = true
			break
		}
		out = append(out, p[:i+1]...)
		p = p[i+1:]
		l.midLine = false
	}
	return out
}

// markRun records that a new run of the replica's process begins at now
// (ending a line the last run left unfinished), so that readers can tell
// the current run from the previous one.
func (l *logFile) markRun(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	var rec []byte
	if l.midLine {
		rec = append(rec, '\n')
		l.midLine = false
	}
	l.runs++
	rec = append(rec, stamp(now, tagRun)...)
	rec = strconv.AppendInt(rec, int64(l.runs), 10)
	l.writeLocked(append(rec, '\n'))
}

func (l *logFile) writeLocked(p []byte) {
	wrote := false
	var err error
	for len(p) > 0 {
		if l.f == nil {
			if err = l.openLocked(); err != nil {
				break
			}
		}
		if l.size >= l.max {
			if err = l.rotateLocked(); err != nil {
				break
			}
			if l.size >= l.max {
				err = errors.New("log file still full after rotation")
				break
			}
		}
		n := min(int64(len(p)), l.max-l.size)
		var w int
		w, err = l.f.Write(p[:n])
		l.size += int64(w)
		p = p[w:]
		wrote = wrote || w > 0
		if err != nil {
			break
		}
	}
	if len(p) > 0 {
		l.dropped.Add(int64(len(p)))
		l.lost += int64(len(p))
		if !l.failing {
			l.failing = true
			l.log.Warn("replica log writes failing: output is dropped", "err", err)
		}
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EIO) {
			// Reopen at the next write: the disk may have room by then.
			if l.f != nil {
				l.f.Close()
				l.f = nil
			}
		}
	} else if l.failing {
		l.failing = false
		l.log.Warn("replica log writes work again", "droppedBytes", l.lost)
		l.lost = 0
	}
	if wrote {
		l.wakeLocked()
	}
}

func (l *logFile) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closed = true
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
	l.wakeLocked()
}

// watch returns the channel the next write closes, and whether the file
// is closed for good.
func (l *logFile) watch() (<-chan struct{}, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.notify, l.closed
}

// Logs reads a replica's stdout or stderr as opts say: by default the
// current (or last) run of its process, from the rotated files oldest
// first, then the current one. With opts.Follow, the reader then waits
// for new output and follows rotations, until it is closed or the
// replica goes away (a follower slower than two rotations skips what it
// missed). Logs of a replica this runtime does not know are read from
// disk without follow. A read with Previous of a replica without an
// earlier run fails with ErrNoPreviousRun (from Read).
func (r *Runtime) Logs(replica string, stream string, opts LogOptions) (io.ReadCloser, error) {
	idx := -1
	for i, n := range streamNames {
		if n == stream {
			idx = i
		}
	}
	if idx < 0 {
		return nil, fmt.Errorf("logs: unknown stream %q: use stdout or stderr", stream)
	}
	follow := opts.Follow && !opts.Previous
	r.mu.Lock()
	var sink *logFile
	rep := r.reps[replica]
	switch {
	case rep != nil && rep.isSim():
		r.mu.Unlock()
		return nil, fmt.Errorf("replica %s is simulated: it has no process and writes no output", replica)
	case rep != nil && rep.logs != nil:
		sink = rep.logs.streams[idx].sink
	case r.keepLogs[replica] != nil:
		sink = r.keepLogs[replica].streams[idx].sink
	}
	r.mu.Unlock()
	live := filepath.Join(r.logDir, fsName(replica), stream+".log")
	if sink == nil {
		follow = false
		if _, err := os.Stat(live); err != nil {
			return nil, fmt.Errorf("logs: no %s logs for replica %q", stream, replica)
		}
	}
	fl := &follower{sink: sink, live: live, follow: follow, done: make(chan struct{})}
	for i := max(r.cfg.LogMaxFiles, 1) - 1; i >= 1; i-- {
		fl.queue = append(fl.queue, fmt.Sprintf("%s.%d", live, i))
	}
	fl.queue = append(fl.queue, live)
	opts.Follow = follow
	lr := &logReader{src: fl, sel: selector{opts: opts}}
	if follow && opts.SayWhy {
		lr.why = func() string { return r.NoOutputReason(replica) }
	}
	return lr, nil
}

// NoOutputReason says why a replica's read found no lines, for the
// reader: "simulated", "never started" (with the reason when known), or
// how its last run ended. "" for a replica this runtime does not know.
func (r *Runtime) NoOutputReason(replica string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := r.reps[replica]
	if rep == nil {
		return ""
	}
	st := rep.st
	why := func(s string) string {
		if st.Message != "" {
			return s + ": " + st.Message
		}
		return s
	}
	switch {
	case rep.isSim():
		return "replica " + replica + " is simulated: it has no process and writes no output"
	case !rep.launched:
		return why("replica " + replica + " has not started yet (" + strings.ToLower(st.Phase) + ")")
	case rep.run == nil:
		return why(fmt.Sprintf("replica %s never started (%d attempts)", replica, st.Restarts+1))
	case st.Pid == 0:
		return why(fmt.Sprintf("replica %s wrote nothing in its last run (exit code %d, %d restarts)", replica, st.ExitCode, st.Restarts))
	default:
		return fmt.Sprintf("replica %s has written nothing yet in this run (started %s)", replica, st.StartedAt.UTC().Format(time.RFC3339))
	}
}

// errCaughtUp is the follower's word that it read everything written so
// far and would now wait (once per follower).
var errCaughtUp = errors.New("caught up")

// logReader turns a follower's records into the lines a read asked for.
type logReader struct {
	src     *follower
	sel     selector
	buf     [32 << 10]byte
	partial []byte // a line not ended yet
	out     []byte // lines ready to return
	err     error  // returned once out is empty
	// why, when following, says why there is nothing to show yet: a
	// follower that caught up without a line gets it as a "# " line.
	why func() string
}

// maxLine is where a line without a newline is cut for reading.
const maxLine = 64 << 10

func (lr *logReader) Read(p []byte) (int, error) {
	for len(lr.out) == 0 {
		if lr.err != nil {
			return 0, lr.err
		}
		n, err := lr.src.Read(lr.buf[:])
		data := lr.buf[:n]
		for len(data) > 0 {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				lr.partial = append(lr.partial, data...)
				if len(lr.partial) >= maxLine {
					lr.line(lr.partial)
					lr.partial = lr.partial[:0]
				}
				break
			}
			if len(lr.partial) > 0 {
				lr.line(append(lr.partial, data[:i]...))
				lr.partial = lr.partial[:0]
			} else {
				lr.line(data[:i])
			}
			data = data[i+1:]
		}
		switch {
		case err == nil:
		case errors.Is(err, errCaughtUp):
			lr.catchUp()
		default:
			if len(lr.partial) > 0 {
				lr.line(lr.partial)
				lr.partial = nil
			}
			lr.catchUp()
			if lr.err == nil {
				lr.err = err
			}
		}
	}
	n := copy(p, lr.out)
	lr.out = lr.out[n:]
	return n, nil
}

func (lr *logReader) line(b []byte) {
	lr.out = append(lr.out, lr.sel.add(parseLogLine(b))...)
}

func (lr *logReader) catchUp() {
	live := lr.sel.live
	out, err := lr.sel.catchUp()
	if !live && len(out) == 0 && err == nil && lr.why != nil && lr.sel.opts.Tail != 0 {
		if why := lr.why(); why != "" {
			out = []byte("# " + why + " (following: new lines will show here)\n")
		}
	}
	lr.out = append(lr.out, out...)
	if err != nil {
		lr.err = err
		return
	}
	if lr.sel.opts.Previous {
		lr.err = io.EOF
	}
}

// Close ends the read; a Read blocked in follow returns io.EOF.
func (lr *logReader) Close() error { return lr.src.Close() }

// follower reads a stream's files in order, then follows the live one.
type follower struct {
	sink    *logFile
	live    string
	follow  bool
	queue   []string // files not opened yet, oldest first
	cur     *os.File
	curLive bool // cur is the live file (follow mode)

	caughtUp  bool       // errCaughtUp was returned
	mu        sync.Mutex // guards cur against Close
	done      chan struct{}
	closeOnce sync.Once
}

func (f *follower) Read(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for {
		select {
		case <-f.done:
			return 0, io.EOF
		default:
		}
		var notify <-chan struct{}
		closed := true
		if f.follow {
			notify, closed = f.sink.watch()
		}
		if f.cur == nil {
			if len(f.queue) == 0 {
				if !f.follow || closed {
					return 0, io.EOF
				}
				// The live file does not exist yet: wait for output.
				f.queue = []string{f.live}
				if err := f.wait(notify); err != nil {
					return 0, err
				}
				continue
			}
			path := f.queue[0]
			f.queue = f.queue[1:]
			c, err := os.Open(path)
			if err != nil {
				continue // a rotated file that does not exist (yet)
			}
			f.cur, f.curLive = c, f.follow && path == f.live && len(f.queue) == 0
		}
		n, err := f.cur.Read(p)
		if n > 0 {
			return n, nil
		}
		if err != nil && err != io.EOF {
			return 0, err
		}
		if !f.curLive {
			f.cur.Close()
			f.cur = nil
			continue
		}
		// End of the live file: rotated away? Then read what is left of
		// it and move to the new one.
		if fi, err := os.Stat(f.live); err == nil {
			if ci, err := f.cur.Stat(); err == nil && !os.SameFile(fi, ci) {
				f.curLive = false
				f.queue = []string{f.live}
				continue
			}
		}
		if closed {
			return 0, io.EOF
		}
		if err := f.wait(notify); err != nil {
			return 0, err
		}
	}
}

func (f *follower) wait(notify <-chan struct{}) error {
	if !f.caughtUp {
		f.caughtUp = true
		return errCaughtUp
	}
	select {
	case <-notify:
		return nil
	case <-f.done:
		return io.EOF
	}
}

// Close ends the stream; a Read blocked in follow returns io.EOF.
func (f *follower) Close() error {
	f.closeOnce.Do(func() { close(f.done) })
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cur != nil {
		f.cur.Close()
		f.cur = nil
	}
	return nil
}
