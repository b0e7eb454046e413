package ca

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

// FuzzPrincipal feeds claims an attacker chooses in part (a repository,
// a branch, a workflow file name: whoever can push to a repository the
// issuer entry allows) to the certificate's identity. Whatever they are,
// a certificate names a plain URI on the issuer's base host: no user
// info, query or fragment, and no dot segment even after decoding, so a
// verifier that normalizes the URI reads the same workflow.
func FuzzPrincipal(f *testing.F) {
	f.Add("octo-org/app", ".github/workflows/release.yml", "refs/heads/main")
	f.Add("octo-org/app", ".github/workflows/release.yml", "refs/heads/x/%2e%2e/%2E%2E/evil")
	f.Add("octo-org/app", "../../evil/.github/workflows/x.yml", "refs/heads/main")
	f.Add("evil@octo-org/app", ".github/workflows/x.yml", "refs/heads/a%2Fb")
	f.Add("octo-org/app", ".github/workflows/x.yml?y#z", "refs/tags/v1")
	iss := &Issuer{URL: "https://token.actions.githubusercontent.com", Kind: KindGitHubActions, Repositories: []string{"*/*"}}
	if err := iss.validate(); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, repo, workflow, ref string) {
		owner, _, _ := strings.Cut(repo, "/")
		jobRef := repo + "/" + workflow + "@" + ref
		claims := map[string]any{"job_workflow_ref": jobRef, "repository": repo, "repository_owner": owner, "workflow_ref": jobRef,
			"run_id": "1", "run_attempt": "1", "event_name": "push", "sha": "a", "workflow": "w", "ref": ref, "job_workflow_sha": "a",
			"runner_environment": "github-hosted", "repository_id": "1", "repository_owner_id": "2", "repository_visibility": "public",
			"workflow_sha": "a"}
		p, err := principal(iss, "sub", time.Now(), claims)
		if err != nil {
			return
		}
		for _, s := range []string{p.SAN, p.Extensions.SourceRepositoryURI, p.Extensions.BuildConfigURI, p.Extensions.RunInvocationURI} {
			u, err := url.Parse(s)
			if err != nil || u.Host != "github.com" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
				t.Fatalf("claims %q %q %q gave URI %q", repo, workflow, ref, s)
			}
			for _, seg := range strings.Split(u.Path, "/") {
				if seg == "." || seg == ".." {
					t.Fatalf("claims %q %q %q gave URI %q with a dot segment", repo, workflow, ref, s)
				}
			}
		}
		if _, err := renderExtensions(p.Extensions); err != nil {
			t.Fatalf("extensions of accepted claims: %v", err)
		}
	})
}
