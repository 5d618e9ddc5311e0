"""Sources: what discovers the versions of each model and tells the manager which ones to serve.

``file_system.FileSystemStoragePathSource`` watches model base paths on a local or network file system
(TF Serving's ``FileSystemStoragePathSource``, plus completeness and settle checks so that a
half-copied version directory is never aspired).
"""
