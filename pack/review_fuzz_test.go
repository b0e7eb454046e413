package pack_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/custody-dev/custody/pack"
	"github.com/custody-dev/custody/pack/packtest"
)

// FuzzOpenEntry: a signed pack with one entry's content replaced, or a
// newer trust-root entry added, by bytes an attacker chose. The trust
// root entries are parsed before the manifest's signature is checked
// (they say which packer keys count), so this reaches trust.ParseDocument
// and trust.UpdateChain with unsigned bytes. Open never panics and never
// accepts content the manifest does not list.
func FuzzOpenEntry(f *testing.F) {
	fx := packtest.New(f)
	good := fx.Build(f, fx.Contents(f), fx.Packer)
	root2, _ := fx.Root.Marshal()
	f.Add(uint8(0), []byte(`{"not":"a bundle"}`))
	f.Add(uint8(1), root2)
	f.Add(uint8(2), []byte("log.test\n10\nAAAA\n\n— log.test AAAA\n"))
	f.Add(uint8(200), root2)
	f.Add(uint8(201), []byte(`{"signed":{"version":2}}`))
	f.Fuzz(func(t *testing.T, which uint8, content []byte) {
		if len(content) == 0 {
			return
		}
		var doc map[string]any
		if err := json.Unmarshal(good, &doc); err != nil {
			t.Fatal(err)
		}
		es := doc["entries"].([]any)
		changed := true
		if int(which) >= len(es) {
			es = append(es, map[string]any{"name": "trust-root/2", "content": content})
		} else {
			e := es[which].(map[string]any)
			orig, _ := base64.StdEncoding.DecodeString(e["content"].(string))
			changed = !bytes.Equal(orig, content)
			e["content"] = content
		}
		doc["entries"] = es
		b, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pack.Open(context.Background(), b, fx.Options()); err == nil && changed {
			t.Fatalf("a pack with content the manifest does not list opened")
		}
	})
}

// FuzzLoadState: whatever the state file holds, LoadState does not
// panic; a state it accepts records and reads back the same.
func FuzzLoadState(f *testing.F) {
	f.Add([]byte(`{"logs":{"log.test":{"size":30,"hash":"AAAA"}},"trustRootVersion":2}`))
	f.Add([]byte(`{"logs":{}}`))
	f.Add([]byte(`{"logs":null}`))
	f.Add([]byte(`{"logs":{"log.test":{"size":-1}}}`))
	f.Add([]byte(`{"checkpoints":{"fuzz.test+00000000":{"size":30,"hash":"AAAA"}},"logs":{},"trustRootVersion":2}`))
	f.Add([]byte(`{"checkpoints":{"fuzz.test+00000000":{"size":1,"hash":"AAAA"}},"logs":{"fuzz.test":{"size":9,"hash":"AAAA"}}}`))
	f.Add([]byte(`{"checkpoints":{},"logs":{}}`))
	f.Add([]byte(`{"checkpoints":null,"logs":{}}`))
	f.Add([]byte(`{"checkpoints":{"fuzz.test+00000000":{"size":"x"}},"logs":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "state.json")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := pack.LoadState(path)
		if err != nil {
			return
		}
		cp := &pack.Checkpoint{Origin: "fuzz.test", Size: 1, Hash: make([]byte, 32)}
		if err := st.Record([]*pack.Checkpoint{cp}, st.TrustRoot); err != nil && !errors.Is(err, pack.ErrRollback) {
			t.Fatalf("Record on an accepted state: %v", err)
		}
		again, err := pack.LoadState(path)
		if err != nil {
			t.Fatalf("the state Record wrote does not load: %v", err)
		}
		if again.TrustRoot != st.TrustRoot || len(again.Logs) != len(st.Logs) || len(again.Checkpoints) != len(st.Checkpoints) {
			t.Fatalf("state read back %+v; wrote %+v", again, st)
		}
	})
}
