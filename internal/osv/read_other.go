//go:build !unix

package osv

import (
	"fmt"
	"io"
	"os"
)

// readEntry reads the file at path (buf is not used on this platform).
func readEntry(path string, buf []byte) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return buf, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxEntryBytes+1))
	if err != nil {
		return buf, err
	}
	if len(b) > MaxEntryBytes {
		return buf, fmt.Errorf("entry is larger than %d bytes", MaxEntryBytes)
	}
	return b, nil
}
