//! What counts as a video, content types by extension, and which file to play.
