"""TagMango's endpoint paths: the operations name them without loading the HTTP client (validating a file
needs the operations' rules, not httpx)."""

COURSES_PATH = "/api/v1/external/courses"
MODULES_PATH = "/api/v1/external/modules"
CHAPTERS_PATH = "/api/v1/external/chapters"
