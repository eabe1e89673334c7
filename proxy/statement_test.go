package proxy

import "testing"

func TestContainsFold(t *testing.T) {
	for _, c := range []struct {
		s, sub string
		want   bool
	}{
		{"SET MANDATE.token = 'x'", "mandate.", true},
		{"set Mandate.Purpose = a", "mandate.", true},
		{"SELECT 1", "mandate.", false},
		{"mandate", "mandate.", false},
		{"RESET ALL", "all", true},
		{"", "all", false},
	} {
		if got := containsFold(c.s, c.sub); got != c.want {
			t.Errorf("containsFold(%q, %q) = %v", c.s, c.sub, got)
		}
	}
}
