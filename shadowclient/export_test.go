package shadowclient

import "slices"

// HeldFilters returns the topic filters the client holds, sorted, for tests.
func (c *Client) HeldFilters() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var fs []string
	for f, st := range c.subs.filters {
		if st.sub != nil {
			fs = append(fs, f)
		}
	}
	slices.Sort(fs)
	return fs
}
