package match

import "testing"

func TestSource(t *testing.T) {
	tests := []struct {
		recorded, want string
		same           bool
	}{
		{"git+https://github.com/Org/Repo.git@refs/tags/v1", "github.com/org/repo", true},
		{"https://github.com/org/repo/", "github.com/org/repo", true},
		{"ssh://git@github.com/org/repo.git", "https://github.com/org/repo", true},
		{"https://github.com/org/repo-fork", "github.com/org/repo", false},
		{"https://gitlab.com/org/repo", "github.com/org/repo", false},
		{"", "", false},
	}
	for _, tt := range tests {
		if got := Source(tt.recorded, tt.want); got != tt.same {
			t.Errorf("Source(%q, %q) = %v, want %v", tt.recorded, tt.want, got, tt.same)
		}
	}
}

func TestBuilder(t *testing.T) {
	const wf = "https://github.com/org/repo/.github/workflows/b.yml"
	tests := []struct {
		recorded, want string
		same           bool
	}{
		{wf + "@refs/tags/v1", wf, true},
		{wf + "@refs/tags/v1", wf + "@refs/tags/v1", true},
		{wf + "@refs/tags/v1", wf + "@refs/tags/v2", false},
		{wf, wf + "@refs/tags/v1", false},
		{wf + "-evil@refs/tags/v1", wf, false},
		{"https://github.com/org/repo/.github/workflows/b.yml@main", "https://github.com/org/repo", false},
	}
	for _, tt := range tests {
		if got := Builder(tt.recorded, tt.want); got != tt.same {
			t.Errorf("Builder(%q, %q) = %v, want %v", tt.recorded, tt.want, got, tt.same)
		}
	}
}
