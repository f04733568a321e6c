"""The portal: the page shell (base template, navigation, home), health and metrics, and the demo
platform. It sits on top of every app and may use them all; no app uses it."""
