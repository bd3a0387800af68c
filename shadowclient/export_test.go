package shadowclient

// HeldFilters returns the topic filters the client holds, sorted, for tests.
func (c *Client) HeldFilters() []string { return c.subs.held() }
