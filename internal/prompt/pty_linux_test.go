package prompt

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair: the controller side plays the user,
// the terminal side is what Password reads from and prompts on.
func openPTY(t *testing.T) (controller, tty *os.File) {
	t.Helper()
	controller, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	t.Cleanup(func() { controller.Close() })
	fd := int(controller.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("couldn't unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Skipf("couldn't name pty: %v", err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("couldn't open pty: %v", err)
	}
	t.Cleanup(func() { tty.Close() })
	return controller, tty
}

// waitEchoOff waits until the terminal stops echoing, so that what the
// "user" types next is typed into the password reader. It fails the test
// if echo stays on: the prompt would show the password.
func waitEchoOff(t *testing.T, tty *os.File) {
	t.Helper()
	for start := time.Now(); time.Since(start) < 30*time.Second; {
		tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		if tio.Lflag&unix.ECHO == 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("the terminal still echoes after the password prompt")
}

func TestPasswordTerminal(t *testing.T) {
	for _, tc := range []struct {
		name    string
		confirm bool
		lines   []string
		want    string
		wantErr error
	}{
		{"once", false, []string{"hunter2"}, "hunter2", nil},
		{"confirmed", true, []string{"hunter2", "hunter2"}, "hunter2", nil},
		{"mismatch", true, []string{"hunter2", "hunter3"}, "", ErrMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Unsetenv(envName)
			controller, tty := openPTY(t)

			chunks := make(chan string)
			go func() { // everything the terminal shows the user
				defer close(chunks)
				buf := make([]byte, 1024)
				for {
					n, err := controller.Read(buf)
					if n > 0 {
						chunks <- string(buf[:n])
					}
					if err != nil {
						return
					}
				}
			}()
			var got []byte
			var err error
			done := make(chan struct{})
			go func() {
				defer close(done)
				got, err = Password(envName, tc.confirm, tty, tty)
			}()

			var screen strings.Builder
			for i, line := range tc.lines {
				for strings.Count(screen.String(), "Enter password") <= i {
					screen.WriteString(<-chunks)
				}
				waitEchoOff(t, tty)
				if _, err := controller.Write([]byte(line + "\n")); err != nil {
					t.Fatal(err)
				}
			}
			<-done
			tty.Close()
			for c := range chunks {
				screen.WriteString(c)
			}

			if !errors.Is(err, tc.wantErr) || string(got) != tc.want {
				t.Fatalf("got %q, %v; want %q, %v", got, err, tc.want, tc.wantErr)
			}
			if n := strings.Count(screen.String(), "Enter password"); n != len(tc.lines) {
				t.Errorf("prompted %d times, want %d: %q", n, len(tc.lines), screen.String())
			}
			if strings.Contains(screen.String(), "hunter") {
				t.Errorf("the terminal showed the password: %q", screen.String())
			}
		})
	}
}
