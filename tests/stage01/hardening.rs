//! (graders to come)
