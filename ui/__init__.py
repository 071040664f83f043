"""The browser app (Gradio) over `qa.Assistant`: `from ui.app import build_app, serve`.

`render`, `chat`, `export` and `uploads` do not import Gradio, so they are tested without a server;
`app` is the one module that does.
"""
