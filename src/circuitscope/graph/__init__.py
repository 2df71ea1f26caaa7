"""Attribution graphs as data: the Graph type, influence, pruning, scores and files.

Pure tensor math and file formats only: nothing here touches a model.
"""
