package libvirt

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	virt "libvirt.org/go/libvirt"
)

// The libvirt event loop is process-wide state that libvirt itself keeps:
// virEventRegisterDefaultImpl installs one poll-based loop for the whole
// process, may be called only once, and must run before the first
// connection is opened, or that connection never dispatches events (for
// the test driver, whose domains are shared by every connection to
// test:///default, the first connection decides for all of them). This
// file is the one place that touches it; eventLoop is the package's only
// global, and it exists because libvirt's loop does.
//
// virEventRunDefaultImpl runs one iteration and blocks in poll(2) until a
// file descriptor or a timer is due; there is no call that stops it. The
// loop goroutine therefore runs only while some Source holds a reference:
// a private timer, disabled (frequency -1) except when the last reference
// is released, then armed with frequency 0, fires at once and so wakes the
// goroutine, which sees no reference left and exits. The next acquire
// starts a new goroutine. Updating a timer from another thread interrupts
// the poll, so the wake-up does not wait for other events.
var eventLoop struct {
	once    sync.Once
	initErr error
	wakeID  int // the wake-up timer

	mu      sync.Mutex
	refs    int
	running bool
}

// RegisterEventLoop installs libvirt's default event loop implementation in
// this process, once; later calls return the first call's result. Source.Run
// calls it; a program that opens other libvirt connections before it starts
// a Source must call it first, because connections opened earlier never
// deliver events (libvirt's rule, see virEventRegisterDefaultImpl).
func RegisterEventLoop() error {
	eventLoop.once.Do(func() {
		if err := virt.EventRegisterDefaultImpl(); err != nil {
			eventLoop.initErr = fmt.Errorf("libvirt: register the default event loop: %w", err)
			return
		}
		id, err := virt.EventAddTimeout(-1, func(timer int) {
			// Disarm again: the wake-up is one-shot.
			virt.EventUpdateTimeout(timer, -1)
		})
		if err != nil {
			eventLoop.initErr = fmt.Errorf("libvirt: add the event loop's wake-up timer: %w", err)
			return
		}
		eventLoop.wakeID = id
	})
	return eventLoop.initErr
}

// acquireEventLoop registers the event loop if needed and makes sure a
// goroutine runs it until the returned release function is called (by
// every acquirer). release is idempotent.
func acquireEventLoop(log *slog.Logger) (release func(), err error) {
	if err := RegisterEventLoop(); err != nil {
		return nil, err
	}
	eventLoop.mu.Lock()
	eventLoop.refs++
	if !eventLoop.running {
		eventLoop.running = true
		go runEventLoop(log)
	}
	eventLoop.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			eventLoop.mu.Lock()
			eventLoop.refs--
			last := eventLoop.refs == 0
			eventLoop.mu.Unlock()
			if last {
				virt.EventUpdateTimeout(eventLoop.wakeID, 0)
			}
		})
	}, nil
}

// runEventLoop dispatches libvirt events until no Source holds the loop.
func runEventLoop(log *slog.Logger) {
	for {
		if err := virt.EventRunDefaultImpl(); err != nil {
			// Only a broken poll set makes it fail; it is logged and the
			// loop goes on, as every libvirt client does, after a pause
			// that keeps a persistent failure from spinning.
			log.Error("libvirt event loop iteration failed", "err", err)
			time.Sleep(10 * time.Millisecond)
		}
		eventLoop.mu.Lock()
		if eventLoop.refs == 0 {
			eventLoop.running = false
			eventLoop.mu.Unlock()
			return
		}
		eventLoop.mu.Unlock()
	}
}
