"""A local plugin loaded by path: implements hooks in small observable ways."""

from monitor import Match, hookimpl


class Exploding:
    def classify(self, stories, watchlists):
        raise RuntimeError("this classifier always fails")


class Marker:
    """Matches every story whose title contains MARKER for the watchlist 'marked'."""

    def classify(self, stories, watchlists):
        for story in stories:
            if "MARKER" in story.title and any(w.name == "marked" for w in watchlists):
                yield Match(story_id=story.id, watchlist="marked", score=5.0, classifier="marker")


@hookimpl
def register_classifiers(register):
    register("exploding", Exploding())
    register("marker", Marker())


@hookimpl
def prepare_story(story):
    return {"language": "xx"} if "MARKER" in story.title else None


@hookimpl
def skip_story(story):
    return True if "SKIPME" in story.title else None


@hookimpl
def story_key(story):
    return f"custom:{story.guid}" if story.guid and story.guid.startswith("custom-") else None


@hookimpl
def track_event(event):
    EVENTS.append(type(event).__name__)


EVENTS: list = []
