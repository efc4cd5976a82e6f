"""The registry of the 20 LLaSO tasks (data in tasks.yaml and templates/)."""

from llaso.tasks.registry import FileMatch, Registry, RegistryError, Source, Task, load_registry

__all__ = ["FileMatch", "Registry", "RegistryError", "Source", "Task", "load_registry"]
