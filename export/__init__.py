"""Everything that leaves the explorer as files: clips, side-by-side panes, poses, datasets, GIFs.

    video.py           VideoWriter: MP4 (mp4v, or H.264 with the [h264] extra) through a
                       journal that stays playable if the recording is interrupted
    compose.py         compose_panes: memory on | memory off | ground truth, labels, overlay
    trajectory_out.py  the walked poses as mirage-trajectory/1 and CSV
    dataset.py         nerfstudio transforms.json out, and back into a Trajectory
    gif.py             GIFs of clips
    walk.py            run_walk: the headless walk behind `mirage walk`

Never imports Qt; imports torch only inside run_walk.
"""
