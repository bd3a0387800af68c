package localiot

// ownJobsTopic reports whether filter (or a topic) lies inside thing's own jobs
// namespace, $aws/things/{thing}/jobs/#, which an AWS IoT policy for a jobs device
// grants it.
func ownJobsTopic(thing, filter string) bool {
	return filterCovers("$aws/things/"+thing+"/jobs/#", filter)
}
